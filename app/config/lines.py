"""Where the configuration files write an option: oslo.config keeps values, not line numbers.

The lines are read as oslo.config's parser reads them: `[section]` starts a
section (any case but DEFAULT's is lowered), `name = value` or `name: value`
assigns, and an indented line continues the value before it.
"""

import re

_NAME = re.compile(r"([^:=]*)[:=]")


def option_name(line):
    """The option `line` assigns, or None (a section, a comment, a continuation, no = or :)."""
    if not line.strip() or line[0] in " \t#;[":
        return None
    named = _NAME.match(line)
    return named.group(1).strip() if named else None


def numbered_lines(path):
    """(number, section, line) of every line of the file at `path`, its end of line stripped."""
    section = None
    with open(path) as file:
        for number, line in enumerate(file, start=1):
            line = line.rstrip()
            if line.startswith("[") and line.endswith("]"):
                section = _section_name(line[1:-1])
            yield number, section, line


def written_at(paths, section, name):
    """(path, line number) of the `name = ...` of [section] that oslo.config uses, or None.

    The last one wins, in the last file that has one, as in oslo.config.
    """
    found, section = None, _section_name(section)
    for path in paths:
        for number, in_section, line in numbered_lines(path):
            if in_section == section and option_name(line) == name:
                found = path, number
    return found


def line_at(path, wanted):
    """(section, line) of line number `wanted` of the file at `path`; (None, '') past its end."""
    for number, section, line in numbered_lines(path):
        if number == wanted:
            return section, line
    return None, ""


def assigned(path):
    """{(section, name)} of every option the file at `path` assigns."""
    names = ((section, option_name(line)) for _, section, line in numbered_lines(path))
    return {(section, name) for section, name in names if name}


def _section_name(name):
    return name if name == "DEFAULT" else name.lower()
