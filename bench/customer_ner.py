"""A customer-like entity data set of our own making, with a tag set the project has never seen.

Purchase-order e-mails tagged SUPPLIER, PRODUCT, QUANTITY, PRICE, DATE and SITE (IOB2), from
templates whose words are ambiguous on purpose: a town is a SITE alone and part of a SUPPLIER
in "Leeds Fasteners Ltd", a number is a QUANTITY or a PRICE by its neighbours. A share of the
entities is left untagged or tagged with a neighbouring type, as hand labelling does, so the
trained model is unsure of many tokens: the case where int8 rounding flips answers.

    python -m bench.customer_ner OUT_DIR [--train 3000] [--test 600] [--seed 7]

writes ``OUT_DIR/train.conll`` and ``OUT_DIR/test.conll`` (the test file is labelled cleanly).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

__all__ = ["TYPES", "write_data_set"]

TYPES = ("SUPPLIER", "PRODUCT", "QUANTITY", "PRICE", "DATE", "SITE")
TOWNS = ["Leeds", "Bristol", "Derby", "Hull", "Wigan", "Reading", "Bath", "York", "Luton", "Crewe"]
SUPPLIER_WORDS = ["Fasteners", "Packaging", "Office", "Steel", "Chemicals", "Logistics", "Print", "Timber"]
SUFFIXES = ["Ltd", "plc", "Group", "& Sons", "Supplies", "UK"]
PRODUCTS = ["hex bolts", "A4 paper", "pallet wrap", "nitrile gloves", "steel brackets", "toner cartridges",
            "cable ties", "safety boots", "label rolls", "copper pipe", "desk chairs", "hand sanitiser"]
SITES = ["the Leeds depot", "Bristol warehouse", "Derby plant", "site 4", "the York office", "Dock 2"]
MONTHS = ["Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "October", "Nov", "December"]
TEMPLATES = [
    "Please order {QUANTITY} {PRODUCT} from {SUPPLIER} for delivery to {SITE} by {DATE} .",
    "{SUPPLIER} quoted {PRICE} for {QUANTITY} {PRODUCT} .",
    "Can {SUPPLIER} deliver the {PRODUCT} to {SITE} on {DATE} ?",
    "Invoice from {SUPPLIER} : {QUANTITY} {PRODUCT} at {PRICE} each .",
    "We still need {QUANTITY} {PRODUCT} at {SITE} , ideally before {DATE} .",
    "The {PRODUCT} from {SUPPLIER} arrived damaged at {SITE} .",
    "Reminder : {SUPPLIER} price list changes on {DATE} , {PRODUCT} goes to {PRICE} .",
    "Thanks , the order of {QUANTITY} went out on {DATE} .",
    "Meeting about the budget moved to {DATE} in {SITE} .",
    "Call me back when you can , the line at {SITE} is busy .",
]


def _entity(kind: str, rng: random.Random) -> list[str]:
    if kind == "SUPPLIER":
        return [rng.choice(TOWNS), rng.choice(SUPPLIER_WORDS), *rng.choice(SUFFIXES).split()]
    if kind == "PRODUCT":
        return rng.choice(PRODUCTS).split()
    if kind == "QUANTITY":
        return rng.choice([[str(rng.randint(2, 900))], [str(rng.randint(2, 60)), rng.choice(["boxes", "packs", "units"])]])
    if kind == "PRICE":
        return rng.choice([[f"£{rng.randint(1, 999)}.{rng.randint(0, 99):02d}"], [str(rng.randint(5, 400)), "GBP"]])
    if kind == "DATE":
        return rng.choice([[str(rng.randint(1, 28)), rng.choice(MONTHS)], [f"{rng.randint(1, 28)}/{rng.randint(1, 12)}"],
                           [rng.choice(["Monday", "Friday", "next", "end"]), rng.choice(["week", "of", "month"])]])
    return rng.choice(SITES).split()


def _sentence(rng: random.Random, noise: float) -> list[tuple[str, str]]:
    tagged: list[tuple[str, str]] = []
    for piece in rng.choice(TEMPLATES).split():
        kind = piece[1:-1] if piece.startswith("{") and piece.endswith("}") else None
        if kind is None:
            tagged.append((piece, "O"))
            continue
        words = _entity(kind, rng)
        label = kind
        if rng.random() < noise:  # hand labelling: missed, or taken for a neighbouring type
            label = rng.choice([None, rng.choice(TYPES)])
        tagged.extend((w, "O" if label is None else f"{'B' if i == 0 else 'I'}-{label}") for i, w in enumerate(words))
    return tagged


def write_data_set(out_dir: Path, n_train: int = 3000, n_test: int = 600, seed: int = 7,
                   noise: float = 0.15) -> tuple[Path, Path]:
    """Write ``train.conll`` (labels with ``noise``) and ``test.conll`` (clean) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for name, count, share in (("train", n_train, noise), ("test", n_test, 0.0)):
        path = out_dir / f"{name}.conll"
        with open(path, "w", encoding="utf-8") as handle:
            for _ in range(count):
                handle.write("".join(f"{w}\t{t}\n" for w, t in _sentence(rng, share)) + "\n")
        paths.append(path)
    return paths[0], paths[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=600)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--noise", type=float, default=0.15)
    args = parser.parse_args(argv)
    train, test = write_data_set(args.out_dir, args.train, args.test, args.seed, args.noise)
    print(f"wrote {train} and {test}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
