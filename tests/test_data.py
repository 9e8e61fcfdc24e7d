import gzip
import socket

import numpy as np
import pytest
import torch

from impediments.data import (IDXError, Standardizer, batch_indices, input_report, iterate_batches, load_dataset,
                              read_idx, write_idx)


@pytest.mark.parametrize("name", ["digits", "mnist1d", "blobs"])
def test_builtin_datasets_open_no_socket(no_network, name):
    with pytest.raises(Exception):  # the guard itself works
        socket.socket()
    ds = load_dataset(name)
    assert len(ds.X_train) > 0 and len(ds.X_test) > 0


def test_digits_split_is_stratified_and_sized():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits", standardize=False)
    total = load_digits().target
    assert len(ds.X_train) + len(ds.X_test) == len(total) == 1797
    assert len(ds.X_test) == int(np.ceil(0.25 * 1797))
    assert ds.feature_shape == (64,) and ds.num_classes == 10 and ds.image_shape == (1, 8, 8)
    full = np.bincount(total, minlength=10) / len(total)
    for y in (ds.y_train, ds.y_test):
        frac = np.bincount(y.numpy(), minlength=10) / len(y)
        assert np.abs(frac - full).max() < 0.01  # stratified: class balance preserved
    # the split depends on the seed, and is reproducible for one seed
    a, b, c = (load_dataset("digits", seed=s, standardize=False) for s in (0, 0, 1))
    assert torch.equal(a.X_train, b.X_train) and not torch.equal(a.X_train, c.X_train)


def test_mnist1d_matches_package_defaults():
    ds = load_dataset("mnist1d", standardize=False)
    assert ds.X_train.shape == (4000, 40) and ds.X_test.shape == (1000, 40)
    assert set(ds.y_train.unique().tolist()) == set(range(10))
    from mnist1d.data import get_dataset_args, make_dataset

    ref = make_dataset(get_dataset_args())
    np.testing.assert_allclose(ds.X_train.numpy(), ref["x"].astype(np.float32))
    np.testing.assert_array_equal(ds.y_test.numpy(), ref["y_test"])


def test_mnist1d_does_not_disturb_numpy_global_rng():
    from impediments.data.datasets import _mnist1d_arrays

    _mnist1d_arrays.cache_clear()
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    load_dataset("mnist1d")
    assert np.random.rand() == expected


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="'cifar'.*digits.*mnist1d.*blobs"):
        load_dataset("cifar")


def test_standardizer_gives_zero_mean_unit_std_on_train():
    ds = load_dataset("digits", standardize=False)
    s = Standardizer().fit(ds.X_train)
    Z = s.transform(ds.X_train).double()
    live = torch.tensor([i not in s.zero_variance_features for i in range(64)])
    torch.testing.assert_close(Z.mean(0), torch.zeros(64, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(Z[:, live].std(0, unbiased=False), torch.ones(int(live.sum()), dtype=torch.float64),
                               atol=1e-5, rtol=0)
    # digits has always-zero corner pixels: reported, not divided by zero
    assert 0 in s.zero_variance_features
    assert torch.isfinite(Z).all()
    # test data is transformed with *train* statistics
    torch.testing.assert_close(s.transform(ds.X_test), (ds.X_test - s.mean) / s.std)


def test_standardizer_state_dict_round_trip():
    X = torch.randn(100, 5) * torch.tensor([1.0, 2, 3, 4, 5]) + 7
    a = Standardizer().fit(X)
    b = Standardizer().load_state_dict(a.state_dict())
    torch.testing.assert_close(a.transform(X), b.transform(X))
    assert b.zero_variance_features == a.zero_variance_features


@pytest.mark.parametrize("bad", [torch.empty(0, 3), torch.tensor([[1.0, float("nan")]])])
def test_standardizer_rejects_empty_and_nan(bad):
    with pytest.raises(ValueError, match="empty|NaN"):
        Standardizer().fit(bad)


def test_standardizer_rejects_wrong_feature_shape():
    s = Standardizer().fit(torch.randn(10, 3))
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        s.transform(torch.randn(10, 4))


def test_input_report_against_brute_force():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(500, 4, generator=g) * torch.tensor([1.0, 10.0, 100.0, 1000.0])  # all positive
    r = input_report(X)
    torch.testing.assert_close(r.mean, X.double().mean(0).float())
    torch.testing.assert_close(r.std, X.double().std(0, unbiased=False).float())
    assert r.same_sign_fraction == 1.0
    var = X.double().var(0, unbiased=False)
    assert r.variance_ratio == pytest.approx(float(var.max() / var.min()), rel=1e-6)
    c = input_report(load_dataset("blobs").X_train)
    assert c.variance_ratio < 10 and abs(c.mean.mean()) < 1e-5


def test_batch_indices_cover_once_and_are_seeded():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = list(batch_indices(10, 3, generator=g1))
    b = list(batch_indices(10, 3, generator=g2))
    assert [len(i) for i in a] == [3, 3, 3, 1]
    assert sorted(torch.cat(a).tolist()) == list(range(10))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert [len(i) for i in batch_indices(10, 3, drop_last=True)] == [3, 3, 3]


@pytest.mark.parametrize("bs", [0, -1, 11])
def test_batch_size_out_of_range(bs):
    with pytest.raises(ValueError, match=f"batch_size={bs}"):
        list(iterate_batches(torch.zeros(10, 2), torch.zeros(10), bs))


# --- IDX -------------------------------------------------------------------------------------------

def _write_mnist_like(folder, gz, n_train=30, n_test=10):
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for stem, arr in arrays.items():
        write_idx(folder / (stem + suffix), arr)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip_through_load_dataset(tmp_path, gz, no_network):
    arrays = _write_mnist_like(tmp_path, gz)
    ds = load_dataset(f"idx:{tmp_path}", standardize=False)
    np.testing.assert_array_equal(ds.X_train.numpy(), arrays["train-images-idx3-ubyte"].reshape(30, -1))
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert ds.image_shape == (1, 28, 28) and ds.feature_shape == (784,)


def test_idx_header_is_standard(tmp_path):
    p = write_idx(tmp_path / "x", np.arange(6, dtype=np.uint8).reshape(2, 3))
    raw = p.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x08, 2]) and raw[4:12] == (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    for dtype in (np.int16, np.int32, np.float32, np.float64, np.int8):
        a = (np.arange(12).reshape(3, 4) - 5).astype(dtype)
        np.testing.assert_array_equal(read_idx(write_idx(tmp_path / f"a{dtype.__name__}.gz", a)), a)


def test_idx_missing_folder_and_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_dataset(f"idx:{tmp_path / 'nowhere'}")
    _write_mnist_like(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_dataset(f"idx:{tmp_path}")


def test_idx_corrupt_files(tmp_path):
    p = write_idx(tmp_path / "a", np.zeros((4, 5), dtype=np.uint8))
    raw = p.read_bytes()
    p.write_bytes(raw[:-3])
    with pytest.raises(IDXError, match="size mismatch"):
        read_idx(p)
    p.write_bytes(b"\x12\x34" + raw[2:])
    with pytest.raises(IDXError, match="magic"):
        read_idx(p)
    p.write_bytes(b"")
    with pytest.raises(IDXError, match="magic"):
        read_idx(p)
    g = tmp_path / "b.gz"
    g.write_bytes(gzip.compress(raw)[:-8])
    with pytest.raises(IDXError, match="corrupt gzip|size mismatch"):
        read_idx(g)


def test_idx_label_count_mismatch(tmp_path):
    _write_mnist_like(tmp_path, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(29, dtype=np.uint8))
    with pytest.raises(IDXError, match="30 images but 29 labels"):
        load_dataset(f"idx:{tmp_path}")


def test_subset_relabels():
    ds = load_dataset("digits").subset([5, 6, 7, 8, 9])
    assert ds.num_classes == 5 and set(ds.y_train.unique().tolist()) == {0, 1, 2, 3, 4}
    with pytest.raises(ValueError, match="valid classes"):
        load_dataset("digits").subset([12])
