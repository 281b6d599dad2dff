"""Progress bars for `wait()`: tqdm.auto draws one in a terminal and a widget in Jupyter."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm


class Bar:
    """A bar of epochs done out of the total, with the latest loss; nothing when disabled."""

    def __init__(self, label: str, enabled: bool, unit: str = "epoch") -> None:
        self._bar = tqdm(desc=label, unit=unit, disable=not enabled, leave=True)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()

    def show(self, info: dict[str, Any], done_key: str = "epochs_done",
             total_key: str = "epochs_total") -> None:  # fmt: skip
        total, done = info.get(total_key), info.get(done_key) or 0
        if total is not None and self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)
        loss = info.get("latest_loss")
        status = info.get("status", "")
        self._bar.set_postfix_str(status if loss is None else f"{status}, loss {loss:.4g}")
