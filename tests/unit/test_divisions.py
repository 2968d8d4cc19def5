"""The GB/T 2260 address check and pickers' data (server/domain/divisions.py), no database."""

from __future__ import annotations

import pytest

from server.domain.divisions import check_division, children, codes, division, pickers, provinces


def fields(errors: list[dict[str, str]]) -> list[str]:
    return [e["field"] for e in errors]


def test_the_data_has_every_province_and_changsha_s_districts() -> None:
    assert len(provinces()) == 31
    hunan = next(p for p in provinces() if p.name == "湖南省")
    changsha = next(c for c in children(hunan.code) if c.name == "长沙市")
    assert {"开福区", "芙蓉区", "天心区", "岳麓区", "雨花区", "望城区"} <= {
        a.name for a in children(changsha.code)
    }
    kaifu = next(a for a in children(changsha.code) if a.name == "开福区")
    assert "伍家岭街道" in {s.name for s in children(kaifu.code)}
    assert division(kaifu.code) == kaifu and division("999999") is None and children("x") == []


@pytest.mark.parametrize(
    "address",
    [
        ("湖南省", "长沙市", "开福区", ""),
        ("湖南省", "长沙市", "开福区", "伍家岭街道"),
        (" 湖南省 ", "长沙市", "望城区 ", "白箬铺镇"),  # surrounding blanks do not matter
        ("北京市", "北京市", "朝阳区", ""),  # how partners write a municipality
        ("北京市", "市辖区", "朝阳区", ""),  # how the data has it
        ("重庆市", "重庆市", "城口县", ""),  # Chongqing's counties sit under 县 in the data
        ("河南省", "济源市", "济源市", ""),  # a county-level city governed by the province
        ("湖北省", "省直辖县级行政区划", "仙桃市", ""),
        ("广东省", "东莞市", "东莞市", ""),  # a city without districts
        ("广东省", "东莞市", "南城街道", ""),  # … whose streets stand in for the district
    ],
)
def test_real_combinations_pass(address: tuple[str, str, str, str]) -> None:
    assert check_division(*address) == []


@pytest.mark.parametrize(
    ("address", "field"),
    [
        (("湖南", "长沙市", "开福区", ""), "address.province"),  # short names are not GB/T 2260 names
        (("火星省", "长沙市", "开福区", ""), "address.province"),
        (("湖南省", "武汉市", "江岸区", ""), "address.city"),  # Wuhan is in Hubei
        (("湖南省", "长沙市", "测试区", ""), "address.district"),
        (("湖南省", "长沙市", "朝阳区", ""), "address.district"),  # Beijing's, not Changsha's
        (("北京市", "北京市", "开福区", ""), "address.district"),
        (("湖南省", "长沙市", "开福区", "坡子街街道"), "address.street"),  # 坡子街 is in 天心区
    ],
)
def test_unknown_names_and_combinations_name_the_field(address: tuple[str, ...], field: str) -> None:
    errors = check_division(*address)
    assert fields(errors) == [field]
    assert errors[0]["message"]


def test_the_prefix_names_where_the_address_sits() -> None:
    errors = check_division("湖南省", "长沙市", "测试区", prefix="items[3].address")
    assert fields(errors) == ["items[3].address.district"]
    assert "开福区" in errors[0]["message"] or "芙蓉区" in errors[0]["message"]  # suggestions


def test_the_pickers_drop_a_city_not_under_the_province_and_everything_below_it() -> None:
    picked = pickers("43", "1101", "110105", "")  # 湖南省 with Beijing's city and district
    assert picked.chosen["province"] == division("43")
    assert picked.chosen["city"] is None and picked.chosen["district"] is None
    assert division("4301") in picked.cities and picked.districts == [] and picked.streets == []


def test_a_stored_address_finds_its_picker_codes_as_deep_as_its_names_match() -> None:
    assert codes("湖南省", "长沙市", "岳麓区", "麓谷街道") == {
        "province": "43",
        "city": "4301",
        "district": "430104",
        "street": "430104011",
    }
    # A municipality written as its own city: the district under 市辖区.
    assert codes("北京市", "北京市", "朝阳区")["district"] == "110105"
    assert codes("湖南省", "长沙市", "没有这个区") == {
        "province": "43",
        "city": "4301",
        "district": "",
        "street": "",
    }
    assert codes("火星", "长沙市", "岳麓区")["province"] == ""
