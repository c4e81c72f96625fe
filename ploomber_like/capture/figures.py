"""Figures in a kernel: which are recorded, under which key, and when they are rendered.
Standard library only at module level: matplotlib is looked up, never imported."""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from typing import Any


def pyplot_figures() -> dict[int, Any]:
    """The figures pyplot holds open, by number (none before pyplot is imported)."""
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    if helpers is None:
        return {}
    return {m.num: m.canvas.figure for m in helpers.Gcf.get_all_fig_managers()}


class FigureRecorder:
    """The figures of a run: the key each is recorded under, and when it is rendered.

    Jupyter's rule: every figure open when a group ends is shown (then closed), as is one shown
    with ``plt.show()``. A statement that draws or returns a figure names it (``roc``); another
    is named after its suptitle, or its axes' title, else ``figure``, ``figure_2``..., in drawing
    order. In a plain script (:attr:`across_groups`) figures stay open from group to group, as
    under ``python``: a figure is rendered as it stands when a group ends, and again, under the
    same key, whenever a later group changes it, so its value is the figure the script leaves.
    """

    def __init__(self, claim: Callable[[str], str], publish: Callable[..., None]) -> None:
        self.claim = claim
        self.publish = publish
        self.across_groups = False
        # id -> (figure, key): the reference keeps the id from being reused while it is here.
        self.keys: dict[int, tuple[Any, str]] = {}
        self.rendered: set[int] = set()

    def name(self, figure: Any, key: str) -> None:
        """Record ``figure`` under ``key`` unless it has a key already."""
        if id(figure) not in self.keys:
            self.keys[id(figure)] = (figure, self.claim(key))

    def render(self, figure: Any) -> None:
        """Publish ``figure`` as a PNG under its key, unless unchanged since it last was."""
        if id(figure) in self.rendered and not figure.stale:
            return
        self.name(figure, figure_key(figure))
        from IPython.core.pylabtools import print_figure

        self.rendered.add(id(figure))
        try:
            png = print_figure(figure, "png")
        except Exception as exc:  # one figure that cannot be drawn must not cost the others
            key = self.keys[id(figure)][1]
            print(f"ploomber_like: figure {key!r} not drawn: {exc!r}", file=sys.stderr)
            png = None
        # Rendering leaves the figure stale; from here on, stale means the script changed it.
        figure.stale = False
        if png:  # nothing for a figure without axes, as Jupyter shows nothing
            data = {"image/png": base64.b64encode(png).decode("ascii")}
            self.publish(self.keys[id(figure)][1], data, kind="figure")

    def start_group(self) -> None:
        if self.across_groups:
            # plt.show() in the group shows and closes the figures, as a window would.
            self._close_figures_on_flush(True)

    def end_group(self) -> None:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None:
            return
        if self.across_groups:
            # The inline backend's flush runs next: it must leave the figures open.
            self._close_figures_on_flush(False)
        open_figures = pyplot_figures()
        named = [figure for figure, _ in self.keys.values()]
        for figure in dict.fromkeys([*named, *(open_figures[n] for n in sorted(open_figures))]):
            self.render(figure)
        if self.across_groups:
            # A figure the group closed was rendered above, as the group left it: it is done.
            still_open = {id(figure) for figure in open_figures.values()}
            self.keys = {i: entry for i, entry in self.keys.items() if i in still_open}
            self.rendered &= still_open
        else:
            pyplot.close("all")  # as Jupyter's inline backend does when a cell ends
            self.keys.clear()
            self.rendered.clear()

    def _close_figures_on_flush(self, close: bool) -> None:
        inline = sys.modules.get("matplotlib_inline.config")
        if inline is not None:  # not loaded: pyplot has not drawn yet
            inline.InlineBackend.instance().close_figures = close


def figure_key(figure: Any) -> str:
    """The key of a figure no statement named: its suptitle, or the one title of its axes."""
    titles = [figure.get_suptitle()] if hasattr(figure, "get_suptitle") else []  # mpl 3.8
    if not any(title.strip() for title in titles):
        titles = [
            title
            for axes in figure.axes
            for title in (axes.get_title(loc) for loc in ("center", "left", "right"))
            if title.strip()
        ]
    text = " ".join(titles[0].split())[:80] if len(titles) == 1 else ""
    return text or "figure"


#: Artists that label a figure rather than draw on it: module and class.
_LABELS = (
    ("matplotlib.text", "Text"),
    ("matplotlib.legend", "Legend"),
    ("matplotlib.axis", "Tick"),
)


def matplotlib_parts(obj: Any) -> tuple[list[Any], bool]:
    """The figures ``obj`` is, belongs to or holds (a Figure, Axes, Line2D, a container or a
    nest of them, an object with a ``figure_`` such as scikit-learn's displays), and whether it
    holds a matplotlib artist.

    Labels (a title, a legend, tick labels: what ``ax.set_title(...)``, ``plt.title(...)``,
    ``ax.legend()``, ``ax.clabel(...)`` return) are artists but lead to no figure: labelling a
    figure does not name it, so one no drawing statement named keeps its title as key (see
    :class:`FigureRecorder`)."""
    artist = sys.modules.get("matplotlib.artist")
    if artist is None:
        return [], False
    labels = tuple(getattr(sys.modules[m], name) for m, name in _LABELS if m in sys.modules)
    figures: list[Any] = []
    found = False
    budget = 1_000  # items looked at, at most: a value may be a large nest of lists

    def visit(item: Any, depth: int) -> None:
        nonlocal found, budget
        budget -= 1
        if budget < 0:
            return
        if isinstance(item, artist.Artist):
            found = True
            if isinstance(item, labels):
                return
            figure = item if type(item).__name__ == "Figure" else item.get_figure()
            while figure is not None and getattr(figure, "figure", figure) is not figure:
                figure = figure.figure  # a SubFigure belongs to a Figure
            if figure is not None and all(figure is not f for f in figures):
                figures.append(figure)
        elif depth >= 3:
            return
        elif isinstance(item, list | tuple):  # matplotlib's containers are tuples
            for part in item[:100]:
                visit(part, depth + 1)
        elif isinstance(item, dict):  # plt.boxplot's lines
            for part in list(item.values())[:100]:
                visit(part, depth + 1)
        elif type(item).__name__ == "ndarray" and getattr(item.dtype, "kind", "") == "O":
            for part in item.ravel()[:100]:
                visit(part, depth + 1)
        elif depth == 0:
            for name in ("figure_", "figure"):  # scikit-learn displays, seaborn grids
                try:
                    held = getattr(item, name, None)
                except Exception:  # a property of the user's object may raise anything
                    continue
                if type(held).__name__ == "Figure" and isinstance(held, artist.Artist):
                    visit(held, depth + 1)
                    return

    visit(obj, 0)
    return figures, found
