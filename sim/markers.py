"""The printed targets a camera finds on the arm's table, defined once for the scenes that show
them (their textures in sim/assets/, made by `marker_textures`) and for the robot computer that
looks for them (deploy/marker_tracker.py, deploy/camera_calibration.py): the ArUco markers on
objects (the push task's block: sim/push.py BLOCK_MARKER), the checkerboard a person holds up to
measure the camera's lens, and the sheet of markers laid on the table at a known place to locate
the camera in the arm's base frame.

Plain dataclasses (numpy only): the robot computer reads them. Drawing them takes OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DICTIONARY = "DICT_4X4_50"
"""OpenCV's ArUco dictionary of every marker here: 4x4 bits, the most robust at the few pixels a
3 cm block covers from a table camera."""
CELLS_WITH_BORDER = 6
"""A 4x4 marker's side in cells: its bits and the black border around them."""


@dataclass(frozen=True)
class FiducialMarker:
    """An ArUco marker printed on every face of a cube-like object, a white margin around it:
    the object is seen whichever face is up, however it turned as it was pushed."""

    marker_id: int
    side: float
    """The black square's side (m)."""
    centre_depth: float
    """How far (m) each printed face lies from the object's centre."""
    centre_height: float
    """How high (m) the object's centre is above the table when it rests there on a face: where a
    side face's centre lies, and a top face `centre_depth` higher."""

    def to_json(self) -> dict:
        return {"dictionary": DICTIONARY, "id": self.marker_id, "side_m": self.side,
                "centre_depth_m": self.centre_depth, "centre_height_m": self.centre_height}

    @classmethod
    def from_json(cls, data: dict) -> FiducialMarker:
        if data.get("dictionary") != DICTIONARY:
            raise ValueError(f"marker dictionary {data.get('dictionary')!r}: this version reads "
                             f"{DICTIONARY} markers")
        return cls(int(data["id"]), float(data["side_m"]), float(data["centre_depth_m"]),
                   float(data["centre_height_m"]))


@dataclass(frozen=True)
class Checkerboard:
    """A printed checkerboard held up in front of the camera to measure its lens."""

    inner_corners: tuple[int, int]
    """Corners where four squares meet, along its width and its height (OpenCV's pattern size)."""
    square: float
    """A square's side (m)."""

    @property
    def squares(self) -> tuple[int, int]:
        return self.inner_corners[0] + 1, self.inner_corners[1] + 1

    def corner_points(self) -> np.ndarray:
        """The inner corners in the board's plane (m), row by row as OpenCV finds them."""
        columns, rows = self.inner_corners
        grid = np.mgrid[0:columns, 0:rows].T.reshape(-1, 2) * self.square
        return np.hstack([grid, np.zeros((len(grid), 1))]).astype(np.float32)


CHECKERBOARD = Checkerboard(inner_corners=(9, 6), square=0.025)
"""25 cm x 17.5 cm: fills a good part of a table camera's view at half a metre."""


@dataclass(frozen=True)
class MarkerSheet:
    """A sheet of ArUco markers in a grid (OpenCV's GridBoard), laid flat on the table with its
    centre at a known point of the arm's base frame and its rows along the base's y axis."""

    grid: tuple[int, int]
    """Markers across (along the base's y) and down (along -x, away from the camera)."""
    side: float
    gap: float
    first_id: int

    @property
    def size(self) -> tuple[float, float]:
        """The printed grid's width and height (m)."""
        across, down = self.grid
        return (across * self.side + (across - 1) * self.gap,
                down * self.side + (down - 1) * self.gap)

    @property
    def ids(self) -> np.ndarray:
        return np.arange(self.first_id, self.first_id + self.grid[0] * self.grid[1])

    def corners_on_table(self, centre: tuple[float, float], yaw: float = 0.0) -> dict[int, np.ndarray]:
        """Each marker's four corners (m, the base frame, on the table at z = 0), clockwise from
        its top left as OpenCV reports them, for the sheet centred at `centre` and turned by
        `yaw` (rad) about z from its rows along +y. The sheet's top is its +x edge."""
        width, height = self.size
        across, _ = self.grid
        c, s = np.cos(yaw), np.sin(yaw)
        turn = np.array([[c, -s], [s, c]])
        corners = {}
        for index, marker_id in enumerate(self.ids):
            row, column = divmod(index, across)
            left = -width / 2 + column * (self.side + self.gap)
            top = height / 2 - row * (self.side + self.gap)
            # Sheet coordinates (right, up) -> base (x up the sheet, y to its left).
            square = [(left, top), (left + self.side, top), (left + self.side, top - self.side),
                      (left, top - self.side)]
            points = np.array([[up, -right] for right, up in square])
            placed = points @ turn.T + np.asarray(centre)
            corners[int(marker_id)] = np.hstack([placed, np.zeros((4, 1))])
        return corners


MARKER_SHEET = MarkerSheet(grid=(4, 3), side=0.04, gap=0.01, first_id=10)
"""An A5 sheet: 4 x 3 markers of 4 cm, ids 10-21 (the block's 0 is not among them)."""
SHEET_CENTRE = (0.2, 0.0)
"""Where `sim2real calibrate-camera` expects the sheet by default (m, base frame): 20 cm in
front of the arm's base, centred, its top edge away from the base."""


def _aruco_dictionary():
    import cv2

    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, DICTIONARY))


def marker_image(marker_id: int, cells: int = CELLS_WITH_BORDER, cell_pixels: int = 20,
                 margin_cells: int = 1) -> np.ndarray:
    """Marker `marker_id` as printed (grey uint8), `margin_cells` of white around it."""
    import cv2

    side = cells * cell_pixels
    image = cv2.aruco.generateImageMarker(_aruco_dictionary(), marker_id, side)
    pad = margin_cells * cell_pixels
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)


def checkerboard_image(board: Checkerboard, square_pixels: int = 40,
                       margin_squares: float = 0.5) -> np.ndarray:
    """The checkerboard as printed (grey uint8), white margin around it; its top-left square
    black, as OpenCV's detector takes any."""
    columns, rows = board.squares
    cells = (np.indices((rows, columns)).sum(axis=0) % 2).astype(np.uint8) * 255
    image = np.kron(cells, np.ones((square_pixels, square_pixels), np.uint8))
    pad = round(margin_squares * square_pixels)
    return np.pad(image, pad, constant_values=255)


def sheet_image(sheet: MarkerSheet, pixels_per_metre: float = 4000) -> np.ndarray:
    """The marker sheet as printed (grey uint8), a margin of one gap around the grid."""
    import cv2

    board = cv2.aruco.GridBoard(sheet.grid, sheet.side, sheet.gap, _aruco_dictionary(), sheet.ids)
    width, height = sheet.size
    margin = round(sheet.gap * pixels_per_metre)
    return board.generateImage((round(width * pixels_per_metre) + 2 * margin,
                                round(height * pixels_per_metre) + 2 * margin), marginSize=margin)


TEXTURES = {
    "block_marker.png": lambda: marker_image(0),  # sim/push.py BLOCK_MARKER
    "checkerboard.png": lambda: checkerboard_image(CHECKERBOARD),
    "marker_sheet.png": lambda: sheet_image(MARKER_SHEET),
}
"""The scenes' printed textures by file name under sim/assets/, and how each is drawn."""


def marker_textures(assets: Path) -> list[Path]:
    """Draw the printed textures into `assets` (run once when a target changes; a test checks the
    committed files are what these definitions draw)."""
    import cv2

    written = []
    for name, draw in TEXTURES.items():
        path = assets / name
        cv2.imwrite(str(path), draw())
        written.append(path)
    return written
