from pcseg.engine.sampler import ResumableBatchSampler


def test_ranks_split_the_single_process_batches():
    single = list(ResumableBatchSampler(7, batch_size=4, seed=3))
    r0 = list(ResumableBatchSampler(7, batch_size=2, seed=3, rank=0, world_size=2))
    r1 = list(ResumableBatchSampler(7, batch_size=2, seed=3, rank=1, world_size=2))
    assert len(single) == len(r0) == len(r1) == 2  # 7 items padded to 8
    assert [a + b for a, b in zip(r0, r1)] == single
    items = [i for batch in single for i, _ in batch]
    assert sorted(set(items)) == list(range(7)) and len(items) == 8
    assert all(epoch == 0 for batch in single for _, epoch in batch)


def test_epochs_reshuffle_deterministically_and_start_skips():
    s = ResumableBatchSampler(10, batch_size=3, seed=0)
    first = list(s)
    s.set_epoch(1)
    second = list(s)
    assert [i for b in first for i, _ in b] != [i for b in second for i, _ in b]
    assert all(e == 1 for b in second for _, e in b)
    s.set_epoch(1, start=2)
    assert list(s) == second[2:]
    assert list(ResumableBatchSampler(10, batch_size=3, seed=0)) == first
    assert list(ResumableBatchSampler(10, batch_size=3, seed=1)) != first
