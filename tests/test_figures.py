"""The report figures' shared pieces, rendered for real with matplotlib's file backend."""

from pipeline.report.figures import log_y, plt


def test_log_axis_labels_are_plain_text_even_with_math_off():
    # math stays off for data labels such as Brown's `nn$`; a log axis must still read 1e-06
    fig, ax = plt.subplots()
    ax.plot([0, 40], [1e-7, 1.0])
    log_y(ax)
    fig.canvas.draw()
    lo, hi = ax.get_ylim()
    shown = [t.get_text() for t in ax.get_yticklabels() if lo <= t.get_position()[1] <= hi]
    plt.close(fig)
    assert ax.get_yscale() == "log"
    assert "1e\u221206" in shown and "1" in shown  # matplotlib writes a real minus sign
    assert not any("$" in t or "mathdefault" in t for t in shown), shown


def test_confusion_panels_fit_the_reports_column_at_full_size(tmp_path):
    """Twelve-tag matrices go one to a row, so a laptop shows them at full size (three side by
    side were drawn 2,100 px wide, shown at 54%); two-label ones stay three to a row."""
    from types import SimpleNamespace

    from PIL import Image

    from pipeline.report.figures import plot_confusions
    from pipeline.report.results import Confusion
    from pipeline.scoring.stats import Summary

    def cells(labels: int) -> list:
        names = [f"T{i}" for i in range(labels)]
        counts = [[10 if i == j else 1 for j in range(labels)] for i in range(labels)]
        return [SimpleNamespace(cell=c, confusion=Confusion(names, names, counts),
                                score=Summary(1, 0.9, 0.0, None, None))
                for c in ("rnn", "lstm", "gru")]

    for labels, most in ((12, 1100), (2, 1160)):
        path = tmp_path / f"{labels}.png"
        plot_confusions(cells(labels), "accuracy", path)  # type: ignore[arg-type]
        width, height = Image.open(path).size
        assert width <= most, (labels, width)
        assert (height > 2 * width) == (labels == 12), (labels, width, height)
