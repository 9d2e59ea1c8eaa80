"""The shared figure writer: atomic, closes the figure, format from the extension."""

from vas_ros.plotting import pyplot, save_figure


def test_save_figure_writes_atomically_and_closes(tmp_path):
    plt = pyplot()
    for name, magic in (('a.png', b'\x89PNG'), ('sub/b.svg', b'<?xml'), ('c', b'\x89PNG')):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        path = save_figure(plt, fig, tmp_path / name, dpi=50)
        assert path.read_bytes()[:5].startswith(magic)
        assert not plt.fignum_exists(fig.number)
    leftovers = [p.name for p in tmp_path.rglob('*') if '.tmp' in p.name]
    assert leftovers == []
