"""Ali-mama display-ad download (Tianchi dataId 56, "Ad Display/Click Data on Taobao") -> impression log.

Input (``--input DIR``; each file may also be in a direct sub-directory, and may be gzipped as ``NAME.gz``)::

    raw_sample.csv     user,time_stamp,adgroup_id,pid,nonclk,clk[,buy]   26M impressions over 8 days (required;
                       a processed release adds a buy column)
    ad_feature.csv     adgroup_id,cate_id,campaign_id,customer,brand,price   the ad catalogue (required; brand
                       may be NULL)
    user_profile.csv   userid,cms_segid,cms_group_id,final_gender_code,age_level,pvalue_level,shopping_level,
                       occupation,new_user_class_level   (required; the released header has a trailing space on
                       the last name; pvalue_level and new_user_class_level may be empty)
    behavior_log.csv   user,time_stamp,btag,cate,brand   btag in pv/cart/fav/buy; 700M lines (optional)

Columns are found by name, so their order does not matter; ``time_stamp`` is Unix seconds.

Output columns::

    user, cms_segid, cms_group_id, final_gender_code, age_level, pvalue_level, shopping_level, occupation,
    city_level, adgroup_id, cate_id, campaign_id, customer, brand, price, pid, hour, time_stamp,
    click, [raction,] conversion

Choices (docs/datasets.md):

- Scenario ``city_level`` = the profile's ``new_user_class_level`` (city level 1-4); missing (an empty cell, or a
  user without a profile line) is its own scenario ``0``: five scenarios A1-A5 (row 11).
- ``click`` = ``clk`` (``nonclk`` must be ``1 - clk``, else the line is bad: ``inconsistent_labels``).
- ``conversion`` (row 12): the ``buy`` column when raw_sample has one; else, from ``behavior_log.csv``: 1 when the
  same user has a ``buy`` of the ad's (cate_id, brand) with ``impression time <= buy time <= impression time +
  --conversion-window-hours`` (both ends included; default 24 h), whether or not the impression was clicked
  (unclicked conversions are what the entire-space heads model; row 13 keeps d independent of c). An ad without
  a brand (``NULL``) never converts this way: (cate, brand) cannot match. With neither a buy column nor a
  behaviour log the run fails and says what to provide.
- ``raction`` (optional, only with ``behavior_log.csv``): a ``cart`` or ``fav`` of the ad's (cate_id, brand) by the
  same user in the same window, counted only on clicked impressions (raction := raction AND click, row 13);
  the written spec has ``requires_click: [raction]``.
- Split: the day of ``time_stamp`` in UTC+8 (Beijing time). Test = ``--test-day`` (default 2017-05-13, the
  release's last day), train = the days before; a later day is dropped (``after_test_day``, a policy skip).
  Hold out validation from train in the pipeline (row 14).
- Features: user id and profile fields, ad id (``adgroup_id``, the item), ``cate_id``, ``campaign_id``,
  ``customer``, ``brand`` (empty when NULL), ``price`` (numeric, log1p + z-score, 50 quantile buckets), ``pid``
  (the ad slot), ``hour`` (0-23, UTC+8). Priors (row 10): user = user id + profile fields, item = adgroup /
  cate / brand / campaign / customer / price (its bucket), scenario = city level + pid.
- An impression whose ad is not in the catalogue is a bad line (``unknown_adgroup_id``); a user without a profile
  is kept with empty profile cells and city level 0 (counted in ``extra.impressions_without_profile``).

Memory: ``ad_feature`` (846k ads) and ``user_profile`` (1.06M users) are catalogue-sized and held in dicts (a
few hundred MB on the full release). The behaviour log is streamed once; ``pv`` lines (the vast majority) are dropped
before they are parsed, and of the buy/cart/fav events only those that can match an impression are kept: the
user is in raw_sample (a set of its users, from a first pass over raw_sample, 1.14M ids), the (cate, brand)
pair is one of an ad in the catalogue, and the time lies in [first impression, last impression + window]. The
kept events go to an on-disk SQLite table (stdlib; 64 MB page cache) indexed on (user, cate, brand, kind, time),
so memory does not grow with the log; each impression is one indexed range query (skipped for users without
any kept event).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import math
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from features.datasets import common
from features.datasets.common import BadLine, PrepareError, PrepareOptions, parse_int_cell

NAME = "alimama"
RAW_FILE, AD_FILE, PROFILE_FILE, BEHAVIOR_FILE = "raw_sample.csv", "ad_feature.csv", "user_profile.csv", \
    "behavior_log.csv"
RAW_COLUMNS = ("user", "time_stamp", "adgroup_id", "pid", "nonclk", "clk")
AD_COLUMNS = ("adgroup_id", "cate_id", "campaign_id", "customer", "brand", "price")
PROFILE_COLUMNS = ("userid", "cms_segid", "cms_group_id", "final_gender_code", "age_level", "pvalue_level",
                   "shopping_level", "occupation", "new_user_class_level")
BEHAVIOR_COLUMNS = ("user", "time_stamp", "btag", "cate", "brand")
PROFILE_FEATURES = PROFILE_COLUMNS[1:-1]
AD_FEATURES = AD_COLUMNS[1:]
SCENARIO = "city_level"
MISSING_CITY_LEVEL = "0"
BUY, CART, FAV = 1, 2, 3
BTAGS = {"buy": BUY, "cart": CART, "fav": FAV}
NULL_BRAND = ("NULL", "")
UTC8_SECONDS = 8 * 3600
DAY_SECONDS = 86400
DEFAULT_TEST_DAY = "2017-05-13"
PRICE_BUCKETS = 50

HELP = """alimama: Ali-mama display-ad click data (Tianchi dataId 56).
  expects  raw_sample.csv (user,time_stamp,adgroup_id,pid,nonclk,clk[,buy]), ad_feature.csv, user_profile.csv,
           and behavior_log.csv (user,time_stamp,btag,cate,brand) unless raw_sample has a buy column
  writes   user + profile fields, city_level (scenario: new_user_class_level, missing -> 0), ad fields, price,
           pid, hour, time_stamp, click, [raction], conversion (buy column, or a buy of the same (cate, brand)
           by the user within --conversion-window-hours); test = --test-day (UTC+8), train = earlier days"""


@dataclasses.dataclass(frozen=True)
class AlimamaOptions(PrepareOptions):
    """Options of the Ali-mama adapter.

    Attributes:
      test_day: the test day (YYYY-MM-DD, UTC+8); earlier days are train, later days are dropped.
      conversion_window_hours: a buy (cart/fav for raction) counts when it is at most this long after the
        impression (inclusive).
    """

    test_day: str = DEFAULT_TEST_DAY
    conversion_window_hours: float = 24.0

    def __post_init__(self):
        super().__post_init__()
        try:
            datetime.date.fromisoformat(self.test_day)
        except (TypeError, ValueError):
            raise PrepareError(f"--test-day must be a date YYYY-MM-DD, got {self.test_day!r}") from None
        if not (math.isfinite(self.conversion_window_hours) and self.conversion_window_hours > 0):
            raise PrepareError(f"--conversion-window-hours must be > 0, got {self.conversion_window_hours}")

    @property
    def test_day_index(self) -> int:
        """Days since 1970-01-01 of the test day (the UTC+8 calendar)."""
        return (datetime.date.fromisoformat(self.test_day) - datetime.date(1970, 1, 1)).days

    @property
    def window_seconds(self) -> int:
        return int(round(self.conversion_window_hours * 3600))


def columns_for(with_raction: bool) -> Tuple[str, ...]:
    labels = ("click", "raction", "conversion") if with_raction else ("click", "conversion")
    return (("user",) + PROFILE_FEATURES + (SCENARIO, "adgroup_id") + AD_FEATURES + ("pid", "hour", "time_stamp")
            + labels)


def spec_dict_for(with_raction: bool):
    def spec_dict(scenario_values: Sequence[str]) -> Dict[str, Any]:
        feats: List[Dict[str, Any]] = [{"name": "user", "role": "id", "dtype": "int64"}]
        feats += [{"name": c, "role": "categorical", "dtype": "int64"} for c in PROFILE_FEATURES]
        feats.append({"name": SCENARIO, "role": "scenario", "dtype": "int64", "values": list(scenario_values)})
        feats.append({"name": "adgroup_id", "role": "id", "dtype": "int64"})
        feats += [{"name": c, "role": "categorical", "dtype": "int64"} for c in ("cate_id", "campaign_id",
                                                                                 "customer", "brand")]
        feats.append({"name": "price", "role": "numeric", "dtype": "float32", "transform": "log1p_zscore",
                      "buckets": PRICE_BUCKETS})
        feats.append({"name": "pid", "role": "categorical", "dtype": "string"})
        feats.append({"name": "hour", "role": "categorical", "dtype": "int64"})
        labels: Dict[str, Any] = {"click": "click", "conversion": "conversion"}
        if with_raction:
            labels.update(raction="raction", requires_click=["raction"])
        return {
            "name": "alimama",
            "features": feats,
            "priors": {"user": ["user"] + list(PROFILE_FEATURES),
                       "item": ["adgroup_id", "cate_id", "brand", "campaign_id", "customer", "price"],
                       "scenario": [SCENARIO, "pid"]},
            "labels": labels,
            "timestamp": "time_stamp",
        }
    return spec_dict


def spec_comment(conversion_source: str, with_raction: bool, options: AlimamaOptions) -> str:
    window = f"{options.conversion_window_hours:g} h"
    raction = (f"raction = a cart/fav of the same (cate_id, brand) by the user within {window} after a clicked "
               f"impression" if with_raction else "no raction label (no behavior_log.csv)")
    return f"""Written by 'msmt data prepare alimama' from the Ali-mama display-ad download (Tianchi dataId 56:
raw_sample.csv joined with ad_feature.csv and user_profile.csv). Choices (features/datasets/alimama.py):
- scenario city_level = new_user_class_level (1-4), missing or no profile -> 0 (docs/datasets.md);
- click = clk; conversion = {conversion_source};
- {raction};
- split by the UTC+8 day of time_stamp: test = {options.test_day}, train = earlier days;
- price: log1p + z-score with {PRICE_BUCKETS} quantile buckets; hour = hour of day (UTC+8); pid = ad slot;
- priors as docs/datasets.md (user + profile; ad/cate/brand/campaign/customer/price; city level + pid)."""


# ------------------------------------------------------------------------------------------------ catalogues
Ad = Tuple[int, Optional[int], Tuple[str, ...]]   # (cate_id, brand or None, output cells of AD_FEATURES)


def _fields(line: str, width: int) -> List[str]:
    parts = line.split(",")
    if len(parts) != width:
        raise BadLine("malformed_line", f"{len(parts)} fields, the header has {width}")
    return parts


def _optional_int(text: str, column: str) -> str:
    """An optional integer cell: '' stays missing, anything else must be an integer."""
    text = text.strip()
    if text:
        parse_int_cell(text, column)
    return text


def _load_table(run: common.PrepareRun, path: str, display: str, columns: Sequence[str], noun: str,
                parse: Callable[[List[str], Dict[str, int]], Tuple[int, Any]]) -> Tuple[Dict[int, Any], int]:
    """``(key -> value, duplicate lines)`` of a catalogue-sized CSV: ``parse(fields, column positions)`` gives
    ``(key, value)`` or raises :class:`BadLine` (counted and skipped); the first line of a duplicate key wins."""
    header = common.read_header(path, display)
    pos = common.column_index(header, columns, display)
    table: Dict[int, Any] = {}
    duplicates = 0
    for lineno, line in run.lines(path, display, noun=noun):
        try:
            key, value = parse(_fields(line, len(header)), pos)
        except BadLine as e:
            run.bad(display, lineno, e)
            continue
        if key in table:
            duplicates += 1
            continue
        table[key] = value
    return table, duplicates


def _parse_ad(parts: List[str], pos: Dict[str, int]) -> Tuple[int, Ad]:
    adgroup = parse_int_cell(parts[pos["adgroup_id"]], "adgroup_id")
    cate = parse_int_cell(parts[pos["cate_id"]], "cate_id")
    campaign = _optional_int(parts[pos["campaign_id"]], "campaign_id")
    customer = _optional_int(parts[pos["customer"]], "customer")
    brand_text = parts[pos["brand"]].strip()
    brand = None if brand_text in NULL_BRAND else parse_int_cell(brand_text, "brand")
    price = parts[pos["price"]].strip()
    if price:
        try:
            value = float(price)
        except ValueError:
            raise BadLine("wrong_type", f"{price!r} is not a number", "price", price) from None
        if not math.isfinite(value):
            raise BadLine("non_finite", f"{price!r} is not a finite number", "price", price)
    return adgroup, (cate, brand, (str(cate), campaign, customer, "" if brand is None else brand_text, price))


def load_ads(run: common.PrepareRun, path: str, display: str, extra: Dict[str, Any]) -> Dict[int, Ad]:
    """``adgroup_id -> (cate_id, brand, cells)`` of ``ad_feature.csv``; the first line of a duplicate id wins."""
    ads, duplicates = _load_table(run, path, display, AD_COLUMNS, "ads", _parse_ad)
    extra.update(ads_loaded=len(ads), ads_duplicate=duplicates,
                 ads_without_brand=sum(brand is None for _, brand, _ in ads.values()))
    return ads


def _parse_profile(parts: List[str], pos: Dict[str, int]) -> Tuple[int, Tuple[str, ...]]:
    userid = parse_int_cell(parts[pos["userid"]], "userid")
    cells = tuple(_optional_int(parts[pos[c]], c) for c in PROFILE_FEATURES)
    city = _optional_int(parts[pos["new_user_class_level"]], "new_user_class_level") or MISSING_CITY_LEVEL
    return userid, cells + (city,)


def load_profiles(run: common.PrepareRun, path: str, display: str,
                  extra: Dict[str, Any]) -> Dict[int, Tuple[str, ...]]:
    """``userid -> cells of PROFILE_FEATURES + (city_level,)`` of ``user_profile.csv``; first line wins."""
    profiles, duplicates = _load_table(run, path, display, PROFILE_COLUMNS, "profiles", _parse_profile)
    extra.update(profiles_loaded=len(profiles), profiles_duplicate=duplicates)
    return profiles


# ------------------------------------------------------------------------------------------------ behaviour log
class BehaviourEvents:
    """The buy/cart/fav events that can label an impression, in an on-disk SQLite table."""

    QUERY = ("SELECT 1 FROM events WHERE user = ? AND cate = ? AND brand = ? AND kind = ? "
             "AND ts BETWEEN ? AND ? LIMIT 1")

    def __init__(self, conn, window_seconds: int):
        self.conn = conn
        self.window = window_seconds
        self.users: Set[int] = set()
        conn.execute("CREATE TABLE events (user INTEGER, cate INTEGER, brand INTEGER, kind INTEGER, ts INTEGER)")
        self.inserter = common.BatchInserter(conn, "INSERT INTO events VALUES (?, ?, ?, ?, ?)")

    def add(self, user: int, cate: int, brand: int, kind: int, ts: int) -> None:
        self.inserter.add((user, cate, brand, kind, ts))
        self.users.add(user)

    def close_inserts(self) -> None:
        self.inserter.flush()
        self.conn.execute("CREATE INDEX events_key ON events (user, cate, brand, kind, ts)")

    def any(self, user: int, cate: int, brand: Optional[int], kinds: Sequence[int], ts: int) -> bool:
        """Is there an event of ``kinds`` by ``user`` on (cate, brand) with ts <= t <= ts + window?"""
        if brand is None or user not in self.users:
            return False
        for kind in kinds:
            if self.conn.execute(self.QUERY, (user, cate, brand, kind, ts, ts + self.window)).fetchone():
                return True
        return False


def scan_impressions(run: common.PrepareRun, path: str, display: str) -> Tuple[Set[int], Optional[int],
                                                                              Optional[int]]:
    """First pass over raw_sample: its users and its time range (lines that do not parse are left to the main
    pass, which reports them)."""
    header = common.read_header(path, display)
    pos = common.column_index(header, RAW_COLUMNS, display)
    iu, it, width = pos["user"], pos["time_stamp"], len(header)
    users: Set[int] = set()
    lo: Optional[int] = None
    hi: Optional[int] = None
    run.say(f"{display}: first pass (users and time range, for the behaviour log)")
    for _, line in run.lines(path, display, noun="impressions (first pass)", count=False):
        parts = line.split(",")
        if len(parts) != width:
            continue
        try:
            user, ts = int(parts[iu]), int(parts[it])
        except ValueError:
            continue
        users.add(user)
        lo = ts if lo is None or ts < lo else lo
        hi = ts if hi is None or ts > hi else hi
    return users, lo, hi


def load_events(run: common.PrepareRun, path: str, display: str, ads: Dict[int, Ad], users: Set[int],
                lo: int, hi: int, events: BehaviourEvents, extra: Dict[str, Any]) -> None:
    """Stream ``behavior_log.csv`` into ``events``, keeping only buy/cart/fav events that can match an impression
    (see the module docstring). Only the kept kinds are parsed; an unknown btag is a bad line."""
    header = common.read_header(path, display)
    pos = common.column_index(header, BEHAVIOR_COLUMNS, display)
    iu, it, ib, ic, ibr, width = (pos["user"], pos["time_stamp"], pos["btag"], pos["cate"], pos["brand"],
                                  len(header))
    pairs = {(cate, brand) for cate, brand, _ in ads.values() if brand is not None}
    kept: Dict[str, int] = collections.Counter()
    dropped: Dict[str, int] = collections.Counter()
    run.say(f"{display}: keeping the buy/cart/fav events that can match an impression (on disk)")
    for lineno, line in run.lines(path, display, noun="behaviour lines"):
        parts = line.split(",")
        try:
            if len(parts) != width:
                raise BadLine("malformed_line", f"{len(parts)} fields, the header has {width}")
            btag = parts[ib]
            kind = BTAGS.get(btag)
            if kind is None:
                if btag == "pv":
                    dropped["pv"] += 1
                    continue
                raise BadLine("unknown_btag", f"{btag!r} is not one of pv, cart, fav, buy", "btag", btag)
            user = parse_int_cell(parts[iu], "user")
            ts = parse_int_cell(parts[it], "time_stamp")
            cate = parse_int_cell(parts[ic], "cate")
            brand_text = parts[ibr].strip()
            if brand_text in NULL_BRAND:
                dropped["no_brand"] += 1
                continue
            brand = parse_int_cell(brand_text, "brand")
        except BadLine as e:
            run.bad(display, lineno, e)
            continue
        if user not in users:
            dropped["user_without_impressions"] += 1
        elif (cate, brand) not in pairs:
            dropped["cate_brand_of_no_ad"] += 1
        elif not lo <= ts <= hi:
            dropped["outside_time_range"] += 1
        else:
            events.add(user, cate, brand, kind, ts)
            kept[btag] += 1
    events.close_inserts()
    extra["behavior_events_kept"] = dict(sorted(kept.items()))
    extra["behavior_lines_dropped"] = dict(sorted(dropped.items()))


# ------------------------------------------------------------------------------------------------ main pass
def prepare(options: AlimamaOptions, echo: Optional[common.Echo] = None) -> Dict[str, Any]:
    """Convert the Ali-mama files under ``options.input``; returns the summary (also in
    ``OUTPUT/prepare_summary.json``). Raises :class:`PrepareError` with a clear message on bad input."""
    raw = common.find_input_file(options.input, RAW_FILE)
    ad_path = common.find_input_file(options.input, AD_FILE)
    profile_path = common.find_input_file(options.input, PROFILE_FILE)
    behavior = common.find_input_file(options.input, BEHAVIOR_FILE, required=False)

    def display(path: str) -> str:
        return os.path.relpath(path, options.input)

    raw_header = common.read_header(raw, display(raw))
    raw_pos = common.column_index(raw_header, RAW_COLUMNS, display(raw), optional=("buy",))
    has_buy = "buy" in raw_pos
    if not has_buy and behavior is None:
        raise PrepareError(f"{display(raw)} has no buy column and there is no {BEHAVIOR_FILE} (or .gz) in "
                           f"--input {options.input}: conversions cannot be labelled. Provide {BEHAVIOR_FILE} "
                           f"(user,time_stamp,btag,cate,brand) of the same release, or a raw_sample.csv with a buy "
                           f"column (a processed release)")
    with_raction = behavior is not None
    conversion_source = ("the buy column of raw_sample.csv" if has_buy else
                         f"a buy of the same (cate_id, brand) by the user within "
                         f"{options.conversion_window_hours:g} h after the impression (behavior_log.csv)")
    layout = common.OutputLayout(dataset=NAME, columns=columns_for(with_raction),
                                 spec_dict=spec_dict_for(with_raction),
                                 spec_comment=spec_comment(conversion_source, with_raction, options),
                                 extra_types={"time_stamp": "int64"})
    extra: Dict[str, Any] = {"conversion_source": "buy column" if has_buy else "behavior_log",
                             "raction": with_raction, "test_day": options.test_day,
                             "conversion_window_hours": options.conversion_window_hours}
    with common.PrepareRun(layout, options, echo) as run:
        ads = load_ads(run, ad_path, display(ad_path), extra)
        profiles = load_profiles(run, profile_path, display(profile_path), extra)
        events: Optional[BehaviourEvents] = None
        conn = None
        try:
            if behavior is not None:
                users, lo, hi = scan_impressions(run, raw, display(raw))
                conn = common.open_scratch_db(os.path.join(run.work_dir, "behavior_events.sqlite"))
                events = BehaviourEvents(conn, options.window_seconds)
                if lo is not None:
                    load_events(run, behavior, display(behavior), ads, users, lo, hi + options.window_seconds,
                                events, extra)
                else:
                    events.close_inserts()
                del users
            _impressions(run, raw, display(raw), raw_header, raw_pos, ads, profiles, events, options, extra)
        finally:
            if conn is not None:
                conn.close()
        return run.finish(extra=extra)


def _impressions(run: common.PrepareRun, path: str, display: str, header: Sequence[str], pos: Dict[str, int],
                 ads: Dict[int, Ad], profiles: Dict[int, Tuple[str, ...]], events: Optional[BehaviourEvents],
                 options: AlimamaOptions, extra: Dict[str, Any]) -> None:
    iu, it, ia, ip, inc, ic = (pos[c] for c in RAW_COLUMNS)
    ibuy = pos.get("buy")
    width = len(header)
    test_day = options.test_day_index
    no_profile = (("",) * len(PROFILE_FEATURES)) + (MISSING_CITY_LEVEL,)
    without_profile = without_brand = 0
    days: Dict[int, int] = collections.Counter()
    run.say(f"{display}: labelling and writing the impressions")
    for lineno, line in run.lines(path, display, noun="impressions"):
        try:
            parts = _fields(line, width)
            user = parse_int_cell(parts[iu], "user")
            ts = parse_int_cell(parts[it], "time_stamp")
            adgroup = parse_int_cell(parts[ia], "adgroup_id")
            clk, nonclk = parts[ic], parts[inc]
            if clk not in ("0", "1"):
                raise BadLine("label_out_of_range", f"label {clk!r} is not 0 or 1", "clk", clk)
            if nonclk not in ("0", "1") or nonclk == clk:
                raise BadLine("inconsistent_labels", f"nonclk={nonclk!r} with clk={clk!r}: nonclk must be 1 - clk",
                              "nonclk", nonclk)
            local = ts + UTC8_SECONDS
            day = local // DAY_SECONDS
            if day > test_day:
                run.skip("after_test_day")
                continue
            ad = ads.get(adgroup)
            if ad is None:
                raise BadLine("unknown_adgroup_id", f"{parts[ia]!r} is not in {AD_FILE}", "adgroup_id", parts[ia])
        except BadLine as e:
            run.bad(display, lineno, e)
            continue
        split = "test" if day == test_day else "train"
        cate, brand, ad_cells = ad
        profile = profiles.get(user)
        if ibuy is not None:
            conversion = parts[ibuy]
        else:
            conversion = "1" if events.any(user, cate, brand, (BUY,), ts) else "0"
        labels = [clk]
        if events is not None:
            labels.append("1" if clk == "1" and events.any(user, cate, brand, (CART, FAV), ts) else "0")
        labels.append(conversion)
        hour = (local % DAY_SECONDS) // 3600
        cells = ([parts[iu]] + list(profile or no_profile) + [parts[ia]] + list(ad_cells)
                 + [parts[ip], str(hour), parts[it]] + labels)
        if run.write(split, cells, display, lineno):
            days[day] += 1
            without_profile += profile is None
            without_brand += brand is None
    extra["impressions_without_profile"] = without_profile
    extra["impressions_of_ads_without_brand"] = without_brand
    epoch = datetime.date(1970, 1, 1).toordinal()
    extra["rows_per_day_utc8"] = {datetime.date.fromordinal(epoch + d).isoformat(): n for d, n in sorted(days.items())}
