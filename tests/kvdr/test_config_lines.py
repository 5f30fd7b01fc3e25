"""The line locator: key paths of a TOML document mapped to the lines that define them."""

from __future__ import annotations

import textwrap
import tomllib

from kvdr._config_lines import line_of, locate_keys


def locate(text: str) -> dict[tuple[str | int, ...], int]:
    return locate_keys(textwrap.dedent(text))


class TestLocateKeys:
    """Headers, keys, arrays and inline tables each get their line."""

    def test_tables_and_keys(self) -> None:
        """[table] and `key =` lines are recorded under the table's path."""
        lines = locate("""\
            top = 1
            [daemon]
            listen = "x"

            [regions.eastus]
            vault_url = "u"
            """)
        assert lines[("top",)] == 1
        assert lines[("daemon",)] == 2
        assert lines[("daemon", "listen")] == 3
        assert lines[("regions", "eastus")] == 5
        assert lines[("regions", "eastus", "vault_url")] == 6

    def test_arrays_of_tables_are_indexed(self) -> None:
        """Each [[pairs]] header is the next index; its keys and sub-tables follow it."""
        lines = locate("""\
            [[pairs]]
            name = "a"
            [[pairs]]
            name = "b"
            [pairs.extra]
            x = 1
            """)
        assert lines[("pairs", 0)] == 1
        assert lines[("pairs", 0, "name")] == 2
        assert lines[("pairs", 1)] == 3
        assert lines[("pairs", 1, "name")] == 4
        assert lines[("pairs", 1, "extra", "x")] == 6

    def test_dotted_and_quoted_keys(self) -> None:
        """a.b."c" = records every prefix of the dotted key."""
        lines = locate("""\
            [x]
            regions.east."vault_url" = "u"
            'literal key' = 2
            """)
        assert lines[("x", "regions")] == 2
        assert lines[("x", "regions", "east", "vault_url")] == 2
        assert lines[("x", "literal key")] == 3

    def test_inline_tables_and_multiline_arrays(self) -> None:
        """Elements of an array spanning lines and keys of inline tables get their lines."""
        lines = locate("""\
            pairs = [
              { name = "a", primary = "e" },
              {
                name = "b" },
            ]
            kinds = ["secret",
                     "key"]
            """)
        assert lines[("pairs", 0)] == 2
        assert lines[("pairs", 0, "primary")] == 2
        assert lines[("pairs", 1)] == 3
        assert lines[("pairs", 1, "name")] == 4
        assert lines[("kinds", 1)] == 7

    def test_strings_hide_look_alike_keys(self) -> None:
        """`=`, `#` and brackets inside strings, also multi-line ones, are not syntax."""
        lines = locate('''\
            a = "x = [1, #2"
            b = """
            fake = 1
            [fake]
            """
            c = 'it''s'
            d = "escaped \\" quote"
            e = 1
            ''')
        assert ("fake",) not in lines
        assert lines[("e",)] == 8

    def test_escaped_quotes_in_multiline_strings_and_nested_arrays(self) -> None:
        """An escaped quote does not end a multi-line string, nor do quotes that belong to
        its contents; `[[` inside a value is two arrays, not an array-of-tables header."""
        text = textwrap.dedent('''\
            a = """x \\""" ""
            fake = 1
            [fake]
            y"""""
            b = \'\'\'z\'\'\'\'
            c = [[1, 2], [
              3]]
            d = ["""q"""", "r"]
            ''')
        assert tomllib.loads(text)["a"] == 'x """ ""\nfake = 1\n[fake]\ny""'
        lines = locate_keys(text)
        assert ("fake",) not in lines
        assert (lines[("b",)], lines[("c", 1)], lines[("c", 1, 0)], lines[("d", 1)]) == (5, 6, 7, 8)

    def test_nearest_written_ancestor(self) -> None:
        """A key that is not written maps to the line of its table."""
        lines = locate("""\
            [[pairs]]
            name = "a"
            """)
        assert line_of(lines, ("pairs", 0, "secondaries")) == 1
        assert line_of(lines, ("nowhere",)) is None
