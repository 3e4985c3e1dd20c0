"""Acknowledgement comments: `# migration-lint: ack M004 <why this is fine here>`.

An acknowledgement applies to a finding whose statement it shares a line with, or
sits in the block of comment lines directly above it. Several rules can be
acknowledged at once: `# migration-lint: ack M005,M007 <reason>`. The reason is
required; an acknowledgement without one acknowledges nothing.
"""
from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass

MARKER = re.compile(r"#\s*migration-lint\s*:\s*(?P<body>.*)$", re.IGNORECASE)
ACK = re.compile(r"^ack\s+(?P<ids>[A-Za-z]\d{3}(?:\s*,\s*[A-Za-z]\d{3})*)(?P<reason>.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class Acknowledgement:
    line: int
    rule_ids: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class BadAcknowledgement:
    line: int
    problem: str


@dataclass
class Comments:
    """The comments of a script: acknowledgements, malformed ones, and which lines
    hold nothing but a comment (for "the comment block directly above")."""
    acknowledgements: list[Acknowledgement]
    bad: list[BadAcknowledgement]
    comment_only_lines: set[int]

    def for_statement(self, line: int, end_line: int) -> list[Acknowledgement]:
        lines = set(range(line, end_line + 1))
        above = line - 1
        while above in self.comment_only_lines:
            lines.add(above)
            above -= 1
        return [ack for ack in self.acknowledgements if ack.line in lines]


def read_comments(source: str, acknowledgeable: set[str], all_rules: set[str]) -> Comments:
    comments = Comments([], [], set())
    lines = source.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        line, column = token.start
        if not lines[line - 1][:column].strip():
            comments.comment_only_lines.add(line)
        marker = MARKER.search(token.string)
        if marker:
            _read_marker(comments, line, marker.group("body").strip(), acknowledgeable, all_rules)
    return comments


def _read_marker(comments: Comments, line: int, body: str, acknowledgeable: set[str], all_rules: set[str]) -> None:
    match = ACK.match(body)
    if not match:
        comments.bad.append(BadAcknowledgement(line, f"cannot read {body!r}: expected 'ack <RULE ID> <reason>'"))
        return
    ids = tuple(part.strip().upper() for part in match.group("ids").split(","))
    unknown = [rule_id for rule_id in ids if rule_id not in all_rules]
    fixed = [rule_id for rule_id in ids if rule_id in all_rules and rule_id not in acknowledgeable]
    reason = match.group("reason").strip().lstrip(":-–— ").strip()
    if unknown:
        comments.bad.append(BadAcknowledgement(line, f"acknowledges unknown rule {', '.join(unknown)}"))
    elif fixed:
        comments.bad.append(BadAcknowledgement(line, f"{', '.join(fixed)} cannot be acknowledged, only fixed"))
    elif not reason:
        comments.bad.append(BadAcknowledgement(line, f"acknowledges {', '.join(ids)} without a reason"))
    else:
        comments.acknowledgements.append(Acknowledgement(line, ids, reason))
