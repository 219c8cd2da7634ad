#!/usr/bin/env python3
"""Builds geoip/meridian-test.mmdb, the small GeoIP2-City-format database that the default
config and the tests use, from geoip/networks.csv. Run from the repository root:

    pip install mmdb-writer
    python3 geoip/make_test_db.py
    # the variant the hot-reload test swaps in:
    python3 geoip/make_test_db.py tests/data/moved.csv tests/data/geo-moved.mmdb
"""
import csv
import os
import sys

from mmdb_writer import MMDBWriter
from netaddr import IPSet

HERE = os.path.dirname(os.path.abspath(__file__))


def main(source, target):
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="Meridian-Test-City",
        languages=["en"],
        description={"en": "Meridian test networks (made by geoip/make_test_db.py)"},
    )
    with open(source, newline="") as f:
        rows = csv.reader(line for line in f if not line.startswith("#"))
        for network, continent, country, subdivision, lat, lon, city in rows:
            record = {
                "continent": {"code": continent},
                "country": {"iso_code": country},
            }
            if subdivision:
                record["subdivisions"] = [{"iso_code": subdivision}]
            if lat and lon:
                record["location"] = {"latitude": float(lat), "longitude": float(lon)}
            if city:
                record["city"] = {"names": {"en": city}}
            writer.insert_network(IPSet([network]), record)
    writer.to_db_file(target)


if __name__ == "__main__":
    if len(sys.argv) == 3:
        main(sys.argv[1], sys.argv[2])
    else:
        main(os.path.join(HERE, "networks.csv"), os.path.join(HERE, "meridian-test.mmdb"))
