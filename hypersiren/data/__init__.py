"""Signals and datasets -> (coordinates, values): grids, images, audio, video, point clouds, faces, context masks."""
