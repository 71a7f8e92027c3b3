"""The printed targets (sim/markers.py) are defined once: the scenes' textures are what the
definitions draw, and the scenes put them where the definitions say."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from sim.markers import MARKER_SHEET, SHEET_CENTRE, TEXTURES, FiducialMarker
from sim.push import BLOCK_HALF_SIZE, BLOCK_MARKER
from sim.spec import ASSETS


@pytest.mark.parametrize("name", sorted(TEXTURES))
def test_each_committed_texture_is_what_its_definition_draws(name: str) -> None:
    import cv2

    committed = cv2.imread(str(ASSETS / name), cv2.IMREAD_GRAYSCALE)
    assert committed is not None, f"{name} is missing: run sim.markers.marker_textures"
    assert np.array_equal(committed, TEXTURES[name]()), (
        f"sim/assets/{name} differs from sim/markers.py: run sim.markers.marker_textures(ASSETS)")


def _geom(model: mujoco.MjModel, name: str) -> int:
    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)


def test_the_block_carries_its_marker_on_every_face() -> None:
    """A cube texture of the marker (one image on all six faces); the marker's place and size
    as BLOCK_MARKER says: its faces a half side from the centre, 6 of a face's 8 cells."""
    model = mujoco.MjModel.from_xml_path(str(ASSETS / "so_arm_push.xml"))
    block = _geom(model, "block")
    texture = model.mat_texid[model.geom_matid[block]]
    assert model.tex_type[texture[texture >= 0][0]] == mujoco.mjtTexture.mjTEXTURE_CUBE
    half = model.geom_size[block]
    assert half == pytest.approx([BLOCK_HALF_SIZE] * 3)
    assert BLOCK_MARKER.centre_depth == BLOCK_MARKER.centre_height == pytest.approx(BLOCK_HALF_SIZE)
    assert BLOCK_MARKER.side == pytest.approx(2 * BLOCK_HALF_SIZE * 6 / 8)


def test_the_marker_sheet_lies_where_calibration_expects_it() -> None:
    model = mujoco.MjModel.from_xml_path(str(ASSETS / "so_arm_calibration.xml"))
    sheet = _geom(model, "marker_sheet")
    body = model.geom_bodyid[sheet]
    assert model.body_pos[body][:2] == pytest.approx(SHEET_CENTRE)
    # Its printed size (a gap of margin round the grid) along the base's x and y: rows along y.
    width, height = MARKER_SHEET.size
    half_x, half_y, _ = model.geom_size[sheet]
    assert (2 * half_x, 2 * half_y) == pytest.approx((width + 2 * MARKER_SHEET.gap,
                                                      height + 2 * MARKER_SHEET.gap))


def test_the_sheets_first_marker_is_at_its_top_left_seen_from_the_base() -> None:
    """Top: the edge away from the base (+x); left, seen from above with the top ahead: +y."""
    corners = MARKER_SHEET.corners_on_table((0.0, 0.0))
    first, last = corners[MARKER_SHEET.first_id], corners[int(MARKER_SHEET.ids[-1])]
    assert first[:, 0].max() == pytest.approx(MARKER_SHEET.size[1] / 2)
    assert first[:, 1].max() == pytest.approx(MARKER_SHEET.size[0] / 2)
    assert last[:, 0].min() == pytest.approx(-MARKER_SHEET.size[1] / 2)
    assert last[:, 1].min() == pytest.approx(-MARKER_SHEET.size[0] / 2)
    turned = MARKER_SHEET.corners_on_table((0.2, 0.0), yaw=np.pi / 2)[MARKER_SHEET.first_id]
    assert turned[0] == pytest.approx([0.2 - first[0][1], first[0][0], 0.0])


def test_a_marker_round_trips_and_another_dictionary_is_refused() -> None:
    assert FiducialMarker.from_json(BLOCK_MARKER.to_json()) == BLOCK_MARKER
    with pytest.raises(ValueError, match="DICT_4X4_50"):
        FiducialMarker.from_json({**BLOCK_MARKER.to_json(), "dictionary": "DICT_6X6_250"})
