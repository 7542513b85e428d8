"""The sample grid is one picture; a click's pixel maps back to its sample (aigc.data.grid), and a
recipe's plain dict is what dataclasses.asdict gives."""
from dataclasses import asdict

import numpy as np
import pytest

from aigc.data.grid import grid_layout, grid_picture, make_grid, scale_for
from aigc.pipelines.recipes import Recipe


def tiles(n, h=5, w=7, c=1):
    """Tile i is filled with the value 10 * (i + 1), so a pixel says which tile it lies in."""
    return np.stack([np.full((h, w, c), 10 * (i + 1), np.uint8) for i in range(n)])


@pytest.mark.parametrize("n,nrow,pad,scale", [(16, 4, 1, 3), (9, 3, 2, 1), (7, 3, 1, 4), (1, 1, 1, 5)])
def test_every_pixel_of_a_tile_maps_to_that_tile(n, nrow, pad, scale):
    imgs = tiles(n)
    pic = np.asarray(make_grid(imgs, nrow=nrow, pad=pad, scale=scale, fill=255))
    lay = grid_layout(imgs, nrow=nrow, pad=pad, scale=scale)
    for y in range(pic.shape[0]):
        for x in range(pic.shape[1]):
            v = int(pic[y, x])
            if v != 255:                                      # a tile's pixel: the layout names that tile
                assert lay.tile_at(x, y) == v // 10 - 1, (x, y)


def test_clicks_on_gaps_and_outside_the_tiles():
    imgs = tiles(7)
    lay = grid_layout(imgs, nrow=3, pad=1, scale=2)
    assert lay.tile_at(0, 0) == 0                    # the outer gap counts for the first tile
    assert lay.tile_at(10_000, 0) is None            # right of the last column
    assert lay.tile_at(0, 10_000) is None            # below the last row
    step_y = (5 + 1) * 2
    assert lay.tile_at(2, 2 * step_y + 2 + 1) == 6 and lay.tile_at(3 * 16 - 1, 2 * step_y + 3) is None   # row 3 has one tile


def test_scale_makes_the_grid_about_the_asked_width():
    imgs = tiles(16, 28, 28)
    for side, px in [(4, 512), (1, 512), (6, 512)]:
        s = scale_for(imgs, side, px)
        width = make_grid(imgs[: side * side], nrow=side, pad=1, scale=s).width
        assert abs(width - px) <= side * 29 / 2 + s, (side, width)        # within half a tile's step
    assert scale_for(tiles(4, 300, 300), 2, 100) == 1          # never shrinks


def test_a_recipe_dict_is_asdict_but_not_shared():
    r = Recipe(model="m", weights_hash="h", z=[0.5, 1.0], latent=[0.1, 0.2], label=3, seed=7, index=2,
               temperature=0.8, offsets={"directions": {"PC1": 1.5}, "dims": {}}, directions="abc")
    d = r.to_dict()
    assert d == asdict(r)
    d["z"].append(9.0)
    d["offsets"]["directions"]["PC1"] = 0.0
    assert r.z == [0.5, 1.0] and r.offsets["directions"]["PC1"] == 1.5      # a copy, as asdict makes
    assert Recipe(model="m", weights_hash="h", z=[1.0]).to_dict() == asdict(Recipe(model="m", weights_hash="h", z=[1.0]))


def test_grid_picture_is_the_grid_and_its_layout():
    imgs = tiles(9, 28, 28)
    pic, lay = grid_picture(imgs, 3, 512)
    s = scale_for(imgs, 3, 512)
    assert np.array_equal(np.asarray(pic), np.asarray(make_grid(imgs, nrow=3, pad=1, scale=s, fill=255)))
    assert lay == grid_layout(imgs, nrow=3, pad=1, scale=s)
