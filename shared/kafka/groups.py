"""Consumer-group membership, as the broker reports it (for tests, benchmarks and operators)."""

from __future__ import annotations

__all__ = ["group_members"]


def group_members(bootstrap: str, group: str) -> dict[str, frozenset[int]]:
    """Members of a stable group and the partitions each holds ({} while it rebalances or before
    anyone has joined)."""
    from kafka import KafkaAdminClient
    from kafka.errors import CoordinatorNotAvailableError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_groups([group]).get(group, {})
    except CoordinatorNotAvailableError:  # a group nobody has joined yet
        return {}
    finally:
        admin.close()
    if described.get("group_state") != "Stable":
        return {}
    return {m["member_id"]: frozenset(p for a in (m.get("member_assignment") or {}).get("assigned_partitions", [])
                                      for p in a["partitions"])
            for m in described.get("members", [])}
