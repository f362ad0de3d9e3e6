"""Consumer-group membership, as the broker reports it (for operators, tests and benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.kafka.clients import client_options

__all__ = ["GroupDescription", "GroupMember", "describe_group", "group_members"]


@dataclass(frozen=True)
class GroupMember:
    """One member of a group and the partitions it holds, by topic."""

    member_id: str
    client_id: str
    host: str
    instance_id: str | None
    assignment: dict[str, tuple[int, ...]]

    @property
    def partitions(self) -> frozenset[int]:
        return frozenset(p for held in self.assignment.values() for p in held)


@dataclass(frozen=True)
class GroupDescription:
    """A group's state (``Stable``, ``PreparingRebalance``, ``Empty``, ``Dead``, ...) and members."""

    group: str
    state: str
    members: tuple[GroupMember, ...]

    def lines(self) -> list[str]:
        """A table for a terminal: the group, then one row per member, ``topic:partitions`` last."""
        rows = [("MEMBER", "CLIENT", "HOST", "INSTANCE", "ASSIGNMENT")]
        for m in sorted(self.members, key=lambda m: m.member_id):
            assigned = ";".join(f"{topic}:{','.join(map(str, held))}" for topic, held in sorted(m.assignment.items()))
            rows.append((m.member_id, m.client_id, m.host, m.instance_id or "-", assigned or "-"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        table = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]) for row in rows]
        return [f"group {self.group}: {self.state}, {len(self.members)} member(s)", *(table if self.members else [])]


def describe_group(bootstrap: str, group: str) -> GroupDescription:
    """The group's state and its members with their assignments (no members before anyone joined)."""
    from kafka import KafkaAdminClient
    from kafka.errors import CoordinatorNotAvailableError

    admin = KafkaAdminClient(**client_options(bootstrap))
    try:
        described = admin.describe_groups([group]).get(group, {})
    except CoordinatorNotAvailableError:  # a group nobody has joined yet
        return GroupDescription(group, "Dead", ())
    finally:
        admin.close()
    members = []
    for m in described.get("members", []):
        assigned = (m.get("member_assignment") or {}).get("assigned_partitions", [])
        members.append(GroupMember(m["member_id"], m.get("client_id", ""), m.get("client_host", ""),
                                   m.get("group_instance_id"),
                                   {a["topic"]: tuple(sorted(a["partitions"])) for a in assigned}))
    return GroupDescription(group, described.get("group_state") or "Dead", tuple(members))


def group_members(bootstrap: str, group: str) -> dict[str, frozenset[int]]:
    """Members of a stable group and the partitions each holds ({} while it rebalances or before
    anyone has joined)."""
    described = describe_group(bootstrap, group)
    if described.state != "Stable":
        return {}
    return {m.member_id: m.partitions for m in described.members}
