"""Invented names for the monitoring network: agencies, towns and site names, all made up.

Keeping names unique across the network is the network builder's job (daemons.datagen.network).
"""

from __future__ import annotations

from daemons.datagen.sampling import Rng

_STEMS = (
    "Alder", "Amber", "Antler", "Aspen", "Badger", "Basalt", "Bear", "Birch", "Bitter", "Blue", "Boulder",
    "Bramble", "Buck", "Cactus", "Cedar", "Chalk", "Cinder", "Clover", "Cobalt", "Copper", "Cotton", "Coyote",
    "Crane", "Crystal", "Dove", "Dust", "Eagle", "Elk", "Ember", "Falcon", "Fern", "Flint", "Fox", "Garnet",
    "Gold", "Granite", "Gravel", "Hawk", "Hazel", "Heron", "Hickory", "Iron", "Jasper", "Juniper", "Lark",
    "Laurel", "Lone", "Maple", "Marble", "Meadow", "Mill", "Mink", "Mist", "Moss", "Oak", "Obsidian",
    "Otter", "Owl", "Pine", "Poplar", "Quail", "Raven", "Red", "Rose", "Rush", "Sage", "Salt", "Sand", "Shale",
    "Silver", "Sky", "Slate", "Sorrel", "Spruce", "Stone", "Sumac", "Summit", "Tamarack", "Thistle", "Timber",
    "Tumble", "Twin", "Willow", "Wind", "Wolf", "Yarrow", "Yucca",
)
_PLACE_WORDS = (
    "Bend", "Bluff", "Butte", "Canyon", "Creek", "Crossing", "Falls", "Flats", "Fork", "Gap", "Grove", "Hills",
    "Hollow", "Junction", "Lake", "Meadows", "Mesa", "Mills", "Park", "Pass", "Point", "Ranch", "Ridge",
    "Springs", "Valley", "Wells",
)
_TOWN_ENDINGS = ("ton", "ville", "field", "dale", "wood", "ford", "land", "burg")
_AREA_WORDS = ("Basin", "Valley", "Plateau", "Range", "Highlands", "Plains", "Foothills", "Uplands", "River")
_AGENCY_FORMS = (
    "{area} Air Quality Management District", "{area} Air Pollution Control District",
    "{stem} County Air Quality Division", "{stem} County Department of Environmental Health",
    "{area} Regional Clean Air Agency", "{area} Air Resources Council", "{stem} Tribal Environmental Office",
    "{area} Department of Environmental Quality",
)
_LANDMARKS = (
    "Fire Station", "High School", "Middle School", "Elementary", "Airport", "Water Tower", "Library",
    "City Hall", "Fairgrounds", "Municipal Park", "Near Road", "District Office", "Community Center",
    "Ranger Station", "Treatment Plant", "Post Office", "Rail Yard", "Golf Course", "Senior Center",
)
_STREET_KINDS = ("Street", "Avenue", "Road", "Drive", "Boulevard", "Lane")


def _pick(rng: Rng, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def invent_town(rng: Rng) -> str:
    if rng.random() < 0.3:
        return _pick(rng, _STEMS) + _pick(rng, _TOWN_ENDINGS)
    return f"{_pick(rng, _STEMS)} {_pick(rng, _PLACE_WORDS)}"


def invent_agency_name(rng: Rng) -> str:
    stem = _pick(rng, _STEMS)
    return _pick(rng, _AGENCY_FORMS).format(stem=stem, area=f"{stem} {_pick(rng, _AREA_WORDS)}")


def invent_site_name(rng: Rng, town: str, with_comma: bool) -> str:
    detail = _pick(rng, _LANDMARKS) if rng.random() < 0.6 else f"{_pick(rng, _STEMS)} {_pick(rng, _STREET_KINDS)}"
    if with_comma:
        return f"{town}, {detail}"
    style = rng.random()
    if style < 0.25:
        return town
    if style < 0.55:
        return f"{town} {_pick(rng, _LANDMARKS)}"
    return f"{town} - {detail}"

