"""Model backends of the paper stack (YOLO, PP-HumanSeg, RTMPose, ViTPose, MotionBERT) and the weights registry."""
