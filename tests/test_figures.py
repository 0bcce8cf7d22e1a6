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
