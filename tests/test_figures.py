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


def test_confusion_matrices_are_one_image_per_cell_legible_on_a_phone(tmp_path):
    """One image per cell, all the size of the largest: a two-label matrix is a phone's
    column wide (357 px, shown at its natural size in a 400 px window); a twelve-tag one grows
    so that its 8 pt numbers keep their size (three side by side in one image were shown at
    54% on a laptop)."""
    from types import SimpleNamespace

    from PIL import Image

    from pipeline.report.figures import PANEL_INCHES, panel_file, plot_confusions
    from pipeline.report.results import Confusion
    from pipeline.scoring.stats import Summary

    def cells(labels: int) -> list:
        names = [f"T{i}" for i in range(labels)]
        counts = [[10 if i == j else 1 for j in range(labels)] for i in range(labels)]
        return [SimpleNamespace(cell=c, confusion=Confusion(names, names, counts),
                                score=Summary(1, 0.9, 0.0, None, None))
                for c in ("rnn", "lstm", "gru")]

    phone = int(PANEL_INCHES * 110)  # matplotlib truncates
    for labels, expected in ((2, phone), (12, int((0.36 * 12 + 1.8) * 110))):
        plot_confusions(cells(labels), "accuracy", tmp_path, f"m{labels}")  # type: ignore[arg-type]
        sizes = {Image.open(tmp_path / panel_file(f"m{labels}", c)).size
                 for c in ("rnn", "lstm", "gru")}
        assert sizes == {(expected, expected)}, (labels, sizes)
    assert phone <= 372  # a 400 px window's column, less the page's padding


def test_learning_curves_share_each_rows_scale_across_the_cells_images(tmp_path):
    """Drawn one image per cell, the loss and score axes still compare: the same limits in
    every cell's image, wide enough for every cell's curve."""
    from types import SimpleNamespace

    from PIL import Image

    from pipeline.report.figures import PANEL_INCHES, draw_learning_curves, panel_file, save

    def cell(name: str, loss: float) -> SimpleNamespace:
        history = [{"epoch": e, "train_loss": loss / e, "val_loss": loss / e + 0.1,
                    "train_acc": 0.5 + 0.04 * e, "val_acc": 0.45 + 0.04 * e}
                   for e in range(1, 6)]
        return SimpleNamespace(cell=name, runs=[SimpleNamespace(history=history)],
                               train=SimpleNamespace(monitor="val_acc", best_epoch=5))

    drawn = draw_learning_curves([cell("rnn", 0.6), cell("gru", 3.0)])  # type: ignore[list-item]
    limits = [[ax.get_ylim() for ax in fig.axes] for _, fig in drawn]
    save(drawn[1][1], tmp_path / panel_file("lc", "gru"))
    plt.close(drawn[0][1])
    assert len(limits) == 2 and limits[0] == limits[1]
    (loss_low, loss_high), _ = limits[0]
    assert loss_low <= 0.6 / 5 and loss_high >= 3.0 + 0.1  # both cells' curves inside
    width, _ = Image.open(tmp_path / panel_file("lc", "gru")).size
    assert width == int(PANEL_INCHES * 110)
