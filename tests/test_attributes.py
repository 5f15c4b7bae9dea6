"""The attribute schema: Table 1 counts, sentences, one-hot mapping and validation errors."""
import numpy as np
import pytest

from ragar_data.attributes import default_schema, load_schema
from ragar_data.errors import SchemaError

TABLE_1_CLASSES = (2, 3, 5, 4, 4, 2, 3, 2, 4, 5, 2, 2, 3, 2, 2)


def test_schema_matches_table_1():
    schema = default_schema()
    assert schema.num_classes == TABLE_1_CLASSES
    assert schema.total_classes == 45
    assert sum(n == 2 for n in schema.num_classes) == 7  # 7 binary, 8 multi-class
    assert [a.kind for a in schema.attributes] == ["static"] * 9 + ["motion"] * 6
    assert [a.id for a in schema.attributes] == [f"A{i}" for i in range(1, 16)]


def test_sentences_follow_the_paper_template():
    sentences = default_schema().sentences()
    assert len(sentences) == 45 and len(set(sentences)) == 45
    assert sentences[0] == "The gender of this pedestrian silhouette is male."
    assert sentences[-1] == "The legs of this pedestrian silhouette are limping."


def test_one_hot_round_trip_and_unknowns():
    schema = default_schema()
    rng = np.random.default_rng(0)
    indices = np.stack([rng.integers(0, n, 8) for n in schema.num_classes], axis=-1)
    one_hot = schema.to_one_hot(indices)
    assert one_hot.shape == (8, 45) and (one_hot.sum(-1) == 15).all()
    np.testing.assert_array_equal(schema.from_scores(one_hot), indices)
    indices[0, 3] = -1
    assert schema.to_one_hot(indices)[0].sum() == 14
    with pytest.raises(ValueError, match="out of range"):
        schema.to_one_hot(np.full(15, 5))


def test_class_index_accepts_names_and_indices():
    gender = default_schema()["gender"]
    assert gender.class_index("Female") == 1 and gender.class_index("0") == 0 and gender.class_index(1) == 1
    with pytest.raises(ValueError, match="unknown class 'robot'"):
        gender.class_index("robot")
    with pytest.raises(ValueError, match="out of range"):
        gender.class_index(2)


@pytest.mark.parametrize("mutation, message", [
    ("classes: [male, female]", "at least 2 distinct"),
    ("region: global", "region"),
    ("kind: static", "kind"),
])
def test_malformed_schema_is_refused_naming_the_file(tmp_path, mutation, message):
    from ragar_data.schemas import schema_path
    text = schema_path("attributes.yaml").read_text()
    replacement = {"classes: [male, female]": "classes: [male, male]", "region: global": "region: torso",
                   "kind: static": "kind: frozen"}[mutation]
    bad = tmp_path / "attributes.yaml"
    bad.write_text(text.replace(mutation, replacement, 1))
    with pytest.raises(SchemaError, match=f"{bad}.*{message}"):
        load_schema(bad)
