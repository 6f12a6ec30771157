"""Visualization: palettes, offscreen PNG rendering, an Open3D window with switchable layers, PLY export and
2D panels. Importing this package loads only numpy; Open3D, Pillow and plyfile are imported by the functions
that use them.
"""
from pcseg.vis.image2d import render_panel_2d, save_panel_2d
from pcseg.vis.layers import LAYERS, SceneLayers
from pcseg.vis.o3d_utils import Open3DUnavailable
from pcseg.vis.palettes import PALETTES, Palette, format_legend, generated_palette, get_palette, print_legend
from pcseg.vis.ply import export_ply, export_scene_ply, read_ply
from pcseg.vis.render import RenderResult, render_png
from pcseg.vis.window import visualize

__all__ = [
    "LAYERS", "PALETTES", "Open3DUnavailable", "Palette", "RenderResult", "SceneLayers", "export_ply",
    "export_scene_ply", "format_legend", "generated_palette", "get_palette", "print_legend", "read_ply",
    "render_panel_2d", "render_png", "save_panel_2d", "visualize",
]
