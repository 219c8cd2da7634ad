#!/usr/bin/env python3
"""Writes world.svg.path: the land outline for the status page, as one SVG path in an
equirectangular projection (x = longitude + 180, y = 90 - latitude, both in degrees).

Source: land-110m.json of the npm package world-atlas@2 (ISC, Mike Bostock), made from Natural
Earth's public-domain 1:110m land polygons:
    npm pack world-atlas@2 && tar xzf world-atlas-2.*.tgz
    python3 src/api/page/make_world.py package/land-110m.json > src/api/page/world.svg.path
"""
import json
import sys


def main(path):
    topo = json.load(open(path))
    sx, sy = topo["transform"]["scale"]
    tx, ty = topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)

    def ring(indices):
        points = []
        for i in indices:
            arc = arcs[i] if i >= 0 else list(reversed(arcs[~i]))
            points.extend(arc if not points else arc[1:])
        return points

    def pieces(pts):
        # A ring that crosses the antimeridian jumps 360 degrees between two points: split it
        # there into pieces that each start and end on the map's edge, so that filling
        # (which closes a piece along that edge) draws no band across the map.
        pts = pts[:-1] if pts[0] == pts[-1] else pts
        jumps = [i for i in range(len(pts)) if abs(pts[i][0] - pts[i - 1][0]) > 180]
        if not jumps:
            return [pts]
        pts = pts[jumps[0]:] + pts[:jumps[0]]
        out, current = [], [pts[0]]
        for prev, point in zip(pts, pts[1:]):
            if abs(point[0] - prev[0]) > 180:
                out.append(current)
                current = []
            current.append(point)
        out.append(current)
        return out

    out = []
    for geometry in topo["objects"]["land"]["geometries"]:
        polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        for polygon in polygons:
            for indices in polygon:
                for piece in pieces(ring(indices)):
                    coords = " ".join(f"{lon + 180:.1f},{90 - lat:.1f}" for lon, lat in piece)
                    out.append(f"M{coords}Z")
    print("".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
