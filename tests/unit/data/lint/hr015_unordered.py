"""HR015: parallel results accumulated in completion order."""

from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import Pool


def square(x: int) -> int:
    return x * x


def gather(values: list[int]) -> list[int]:
    results = []
    with ProcessPoolExecutor() as executor:
        futures = [executor.submit(square, v) for v in values]
        for future in as_completed(futures):  # expect: HR015
            results.append(future.result())
    return results


def pooled(values: list[int]) -> list[int]:
    with Pool(2) as pool:
        return list(pool.imap_unordered(square, values))  # expect: HR015


def fine(values: list[int]) -> tuple[list[int], int]:
    with Pool(2) as pool:
        ordered = list(pool.imap(square, values))
        total = sum(pool.imap_unordered(square, values))
    return ordered, total
