"""HR012: a set's iteration order feeding results."""


def labels(rows: list[str]) -> list[str]:
    seen = set(rows)
    ordered = []
    for label in set(rows):  # expect: HR012
        ordered.append(label)
    names = [name.upper() for name in seen]  # expect: HR012
    joined = ",".join({"b", "a"})  # expect: HR012
    return [
        *ordered,
        *names,
        joined,
        *list(set(rows)),  # expect: HR012
        *sorted(set(rows)),
        *sorted(list(seen)),
        str(any(label.startswith("x") for label in seen)),
        str(all(label for label in seen)),
        str(len(seen)),
        str("a" in seen),
    ]
