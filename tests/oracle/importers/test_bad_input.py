"""Bad input: one line naming the file and line (or key) and how to fix it; nothing written.

Each case runs on SQLite and PostgreSQL, beside a good file in the same call and over a
database that already holds data, and checks that every table's row count is unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from oracle.errors import InputError
from oracle.importers import import_files
from tests.oracle.importers.helpers import row_counts, write

HEADER = "timestamp,availability_zone,instance_type,product_description,spot_price\n"
GOOD_ROW = "2021-03-02T01:45:29+00:00,us-east-1a,g4dn.xlarge,Linux/UNIX,0.1578\n"

#: name -> (file content, expected message after "PATH:")
CASES = {
    "empty file": ("", r"1: the file is empty; give a file with price data"),
    "blank file": ("\n  \n", r"1: the file is empty"),
    "header only": (HEADER, r"2: no data rows after the header; give a file with data"),
    "other format (text)": ("hello, world\nthis is not a price file\n", r"1: unknown columns"),
    "other format (JSON)": ('{"hello": "world"}', r"1: JSON of an unknown shape; expected "),
    "invalid JSON": ('{"SpotPriceHistory": [\n  {"SpotPrice": }\n]}', r"2: not valid JSON"),
    "bad timestamp": (
        HEADER + GOOD_ROW + "yesterday,us-east-1a,g4dn.xlarge,Linux/UNIX,0.1578\n",
        r"3: timestamp 'yesterday' is not a time; write ISO 8601",
    ),
    "negative price": (
        HEADER + "2021-03-02T01:45:29+00:00,us-east-1a,g4dn.xlarge,Linux/UNIX,-0.1578\n",
        r"2: spot price '-0.1578' is not a price; write a number of dollars per hour from 0 to",
    ),
    "non-numeric price": (
        HEADER + GOOD_ROW + GOOD_ROW.replace("0.1578", "cheap"),
        r"3: spot price 'cheap' is not a number",
    ),
    "unknown region (AZ name)": (
        HEADER + GOOD_ROW.replace("us-east-1a", "xx-east-1a"),
        r"2: unknown availability zone 'xx-east-1a'; use an AZ name such as us-east-1a",
    ),
    "unknown region (AZ ID)": (
        "az_id\tinstance_type\tproduct_description\tspot_price\ttimestamp\n"
        "zz1-az2\tg4dn.4xlarge\tLinux/UNIX\t0.4664\t2022-05-31T18:20:41+00:00\n",
        r"2: unknown availability zone ID 'zz1-az2'",
    ),
    "unknown region (advisor)": (
        "region,os,instance_type,savings_vs_ondemand_pct,interruption_range_index,"
        "interruption_range_label,interruption_range_max_pct\n"
        "mars-north-1,Linux,g5.xlarge,70,0,<5%,5\n",
        r"2: unknown region 'mars-north-1'; use an AWS region name such as us-east-1",
    ),
    "zone outside its region (catalog)": (
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,"
        "Region,AvailabilityZone\n"
        "g5.xlarge,A10G,1,4,16,1.006,0.40,us-east-1,usw2-az1\n",
        r"2: availability zone 'usw2-az1' is in us-west-2, not in us-east-1",
    ),
    "zone outside its region (history)": (
        "region,az_id,instance_type,spot_price,timestamp\n"
        "us-east-1,usw2-az1,g5.xlarge,0.4,2025-01-01T00:00:00Z\n",
        r"2: availability zone 'usw2-az1' is in us-west-2, not in us-east-1",
    ),
    "wrong field count": (HEADER + "2021-03-02T01:45:29+00:00,us-east-1a\n", r"2: expected 5"),
    "bad instance type": (
        HEADER + GOOD_ROW.replace("g4dn.xlarge", "a big GPU"),
        r"2: instance type 'a big GPU' is not an EC2 instance type",
    ),
    "bad JSON record": (
        '{"SpotPriceHistory": [{"AvailabilityZone": "us-east-1a", "InstanceType": "p3.2xlarge",'
        ' "ProductDescription": "Linux/UNIX", "SpotPrice": "0.9", "Timestamp": "2021-13-01"}]}',
        r"SpotPriceHistory\[0\]: timestamp '2021-13-01' is not a time",
    ),
    "missing JSON key": (
        '[{"AvailabilityZone": "us-east-1a", "ProductDescription": "Linux/UNIX",'
        ' "SpotPrice": "0.9", "Timestamp": "2021-03-01T00:00:00Z"}]',
        r"\[0\]: the key 'InstanceType' is missing",
    ),
    "no instance types": ('{"InstanceTypes": []}', r" holds no records; give a file with data"),
    "empty spot history": ('{"SpotPriceHistory": []}', r" the spot price history holds no"),
    # Values outside what the project or the databases hold: refused, never an overflow.
    "far-future timestamp with an offset": (
        HEADER + GOOD_ROW.replace("2021-03-02T01:45:29+00:00", "9999-12-31T23:59:59-05:00"),
        r"2: timestamp '9999-12-31T23:59:59-05:00' is out of range; use a time from 1970-01-01",
    ),
    "far-past timestamp with an offset": (
        HEADER + GOOD_ROW + GOOD_ROW.replace("2021-03-02T01:45:29+00:00", "0001-01-01T00:00+05:00"),
        r"3: timestamp '0001-01-01T00:00\+05:00' is out of range",
    ),
    "absurd price": (
        HEADER + GOOD_ROW.replace("0.1578", "1e308"),
        r"2: spot price '1e308' is not a price; write a number of dollars per hour from 0 to",
    ),
    "infinite price": (HEADER + GOOD_ROW.replace("0.1578", "inf"), r"2: spot price 'inf' is not"),
    "price too large for a float": (
        HEADER + GOOD_ROW.replace("0.1578", "9" * 400),
        r"2: spot price '9999.*\.\.\.' is not a price",
    ),
    "field over the csv module's limit": (
        HEADER + GOOD_ROW + GOOD_ROW.replace("Linux/UNIX", '"' + "x" * 140_000 + '"'),
        r"3: not a well-formed CSV row \(field larger than field limit \(131072\)\)",
    ),
    "header field over the csv module's limit": (
        HEADER.replace("spot_price", '"' + "p" * 140_000 + '"') + GOOD_ROW,
        r"1: not a well-formed header \(field larger than field limit",
    ),
    "line over a megabyte": (
        HEADER + GOOD_ROW + "x" * 1_100_000 + "\n",
        r"3: a line longer than 1,048,576 bytes",
    ),
    "text too long for its column": (
        HEADER + GOOD_ROW.replace("Linux/UNIX", "L" * 65),
        r"2: product description 'LLLL.*' is longer than 64 characters",
    ),
    "instance type too long for its column": (
        HEADER + GOOD_ROW.replace("g4dn.xlarge", "g" * 60 + ".xlarge"),
        r"2: instance type 'ggg.*' is not an EC2 instance type",
    ),
    "not UTF-8 further down": (
        (HEADER + GOOD_ROW).encode() + b"2021-03-02T01:45:29+00:00,us-east-1a,\xff\xfe,L,1\n",
        r"3: not UTF-8 text",
    ),
    "JSON nested 100k levels deep": ("[" * 100_000 + "]" * 100_000, r" JSON nested too deeply"),
    "JSON value of the wrong shape": (
        '{"InstanceTypes": [{"InstanceType": "g5.xlarge", "VCpuInfo": {"DefaultVCpus": 4},'
        ' "MemoryInfo": {"SizeInMiB": 16384}, "GpuInfo": {"Gpus": ["A10G"]}}]}',
        r"InstanceTypes\[0\]: a value of the wrong shape \(AttributeError",
    ),
    "whole number too large for its column": (
        "instance_type,accelerator_name,accelerator_count,accelerator_memory_mib_each,vcpus,"
        "memory_mib\ng5.xlarge,A10G,1,24576,4,99999999999999999999\n",
        r"2: memory_mib '99999999999999999999' is above 2,147,483,647",
    ),
}


@pytest.fixture
def seeded(engine: Engine, tmp_path: Path) -> Engine:
    """A database that already holds one imported file."""
    seed = tmp_path / "seed.csv"
    seed.write_text(HEADER + GOOD_ROW.replace("us-east-1a", "us-east-1b"))
    import_files(engine, [seed])
    return engine


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_names_file_and_line_and_writes_nothing(
    seeded: Engine, tmp_path: Path, case: str
) -> None:
    content, expected = CASES[case]
    good = write(tmp_path / "good.csv", HEADER + GOOD_ROW)
    bad = tmp_path / "bad.data"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        bad.write_text(content)
    before = row_counts(seeded)

    with pytest.raises(InputError) as caught:
        import_files(seeded, [good, bad])

    message = str(caught.value)
    assert "\n" not in message
    assert re.match(re.escape(f"{bad}:") + expected, message), message
    assert row_counts(seeded) == before


def test_missing_file_is_named(seeded: Engine, tmp_path: Path) -> None:
    before = row_counts(seeded)
    with pytest.raises(InputError, match=r"nope\.csv: no such file; check the path"):
        import_files(seeded, [tmp_path / "nope.csv"])
    assert row_counts(seeded) == before


def test_unknown_region_option_is_refused(seeded: Engine, tmp_path: Path) -> None:
    content = "timestamp,instance,price_usd\n2025-06-05,p5.48xlarge,55\n"
    history = write(tmp_path / "od.csv", content)
    with pytest.raises(InputError, match=r"--region: unknown region 'moon-1'"):
        import_files(seeded, [history], region="moon-1")
