"""Any TensorFlow Datasets dataset, split and text field (the tutorial's Reddit TIFU path)."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from samplerlab._quiet import native_logs_silenced
from samplerlab.datasets.base import TextSource, require_dir
from samplerlab.errors import DatasetError

OFFLINE_HELP = (
    "offline, either copy a prepared TFDS data dir (~/tensorflow_datasets/{name}/...) and "
    "set data_dir: DIR, or put the dataset's source file(s) in a folder and set "
    "manual_dir: FOLDER (see docs/datasets.md)")


class TfdsSource(TextSource):
    """Texts of one feature of a TFDS split, loaded with ``tfds.load``.

    With ``field`` unset the dataset is loaded ``as_supervised=True`` and the input of each
    (input, target) pair is used: for ``reddit_tifu`` that is the tutorial's exact call,
    ``tfds.load("reddit_tifu", split="train", as_supervised=True)``, keeping ``documents``.

    Example:

    ```python
    import tensorflow_datasets as tfds
    from samplerlab.datasets.tfds_source import TfdsSource

    with tfds.testing.mock_data(num_examples=3):  # offline: TFDS's own fake records
        assert len(list(TfdsSource("reddit_tifu").texts())) == 3
    ```
    """

    def __init__(self, name: str, split: str = "train", field: str | None = None,
                 data_dir: str | None = None, manual_dir: str | None = None,
                 download: bool = True) -> None:
        self.name = name
        self.split = split
        self.field = field
        self.data_dir = data_dir
        self.manual_dir = manual_dir
        self.download = download
        self.params = {"name": name, "split": split, "field": field, "data_dir": data_dir,
                       "manual_dir": manual_dir, "download": download}

    # -- checks ----------------------------------------------------------------------
    @native_logs_silenced()  # importing TFDS starts TensorFlow
    def _builder(self) -> Any:
        import tensorflow_datasets as tfds

        try:
            return tfds.builder(self.name, data_dir=self.data_dir)
        except tfds.core.registered.DatasetNotFoundError:
            base = self.name.split("/")[0].split(":")[0]
            close = difflib.get_close_matches(base, tfds.list_builders(), n=3)
            hint = (f" (did you mean {', '.join(close)}?)" if close else
                    "; see https://www.tensorflow.org/datasets/catalog for the names")
            raise DatasetError(f"unknown TFDS dataset '{self.name}'{hint}",
                               field="name") from None
        except Exception as exc:  # noqa: BLE001 - a bad config name, a broken data dir
            raise DatasetError(f"TFDS dataset '{self.name}': {_first_line(exc)}; check the "
                               "name (NAME or NAME/CONFIG, see the TFDS catalog) and data_dir",
                               field="name") from None

    def check(self) -> None:
        if self.data_dir is not None:
            require_dir(self.data_dir, field="data_dir")
        if self.manual_dir is not None:
            require_dir(self.manual_dir, field="manual_dir")
        builder = self._builder()
        features = list(builder.info.features.keys())
        if self.field is None:
            if not builder.info.supervised_keys:
                raise DatasetError(f"TFDS dataset '{self.name}' has no (input, target) keys; "
                                   f"set field to one of: {', '.join(features)}", field="field")
        elif self.field not in features:
            close = difflib.get_close_matches(self.field, features, n=2)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise DatasetError(f"unknown field '{self.field}' in TFDS dataset '{self.name}'"
                               f"{hint} (fields: {', '.join(features)})", field="field")
        if not self.download and not _is_prepared(builder):
            raise DatasetError(
                f"TFDS dataset '{self.name}' is not prepared in "
                f"{self.data_dir or '~/tensorflow_datasets'} and download is false; "
                + OFFLINE_HELP.format(name=self.name), field="data_dir")

    # -- reading ---------------------------------------------------------------------
    @native_logs_silenced()
    def load(self) -> Any:
        """``tfds.load`` of the split, with one clear :class:`DatasetError` when it fails."""
        import tensorflow_datasets as tfds

        kwargs: dict[str, Any] = {}
        if self.manual_dir is not None:
            # TFDS looks in manual_dir for a file named as in the dataset's checksums.tsv
            # before downloading it (reddit_tifu: tifu_all_tokenized_and_filtered.json).
            kwargs["download_and_prepare_kwargs"] = {"download_config": tfds.download.
                                                     DownloadConfig(manual_dir=self.manual_dir)}
        try:
            return tfds.load(self.name, split=self.split, as_supervised=self.field is None,
                             data_dir=self.data_dir, download=self.download, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one actionable line
            raise DatasetError(
                f"could not load TFDS dataset '{self.name}' split '{self.split}' "
                f"({type(exc).__name__}: {_first_line(exc)}); "
                + OFFLINE_HELP.format(name=self.name), field="name") from None

    def tf_dataset(self) -> Any:
        ds = self.load()
        if self.field is None:
            return ds.map(lambda document, _: document)
        field = self.field
        return ds.map(lambda example: example[field])

    def texts(self) -> Iterator[str]:
        for value in self.tf_dataset().as_numpy_iterator():
            yield value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _is_prepared(builder: Any) -> bool:
    try:
        return bool(builder.is_prepared())
    except AttributeError:  # older TFDS
        return Path(builder.data_path, "dataset_info.json").exists()


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


