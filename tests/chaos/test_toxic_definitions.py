"""The pure parts of the fault proxy: toxic JSON, slicing, addresses and channels."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaos.address import join_host_port, split_host_port
from chaos.errors import ApiError
from chaos.stream import END, Channel, Chunk, Direction
from chaos.toxics import TOXIC_TYPES, apply_toxic_update, parse_new_toxic, slice_points


def never_taken(name: str) -> bool:
    return False


class TestParseNewToxic:
    """Building a toxic from a create request."""

    def test_defaults(self) -> None:
        """Stream downstream, toxicity 1, name "<type>_<stream>", attributes zero."""
        toxic = parse_new_toxic({"type": "slicer"}, never_taken)
        assert toxic.direction is Direction.DOWNSTREAM
        assert toxic.to_json() == {
            "attributes": {"average_size": 0, "size_variation": 0, "delay": 0},
            "name": "slicer_downstream",
            "type": "slicer",
            "stream": "downstream",
            "toxicity": 1.0,
        }

    def test_stream_is_case_insensitive_and_kept_as_given(self) -> None:
        """Like Toxiproxy, "UpStream" is upstream and the name keeps its spelling."""
        toxic = parse_new_toxic({"type": "latency", "stream": "UpStream"}, never_taken)
        assert toxic.direction is Direction.UPSTREAM
        assert toxic.name == "latency_UpStream"

    def test_unknown_attributes_are_ignored(self) -> None:
        """Keys a toxic does not have are dropped, as Go's decoder drops them."""
        toxic = parse_new_toxic(
            {"type": "latency", "attributes": {"latency": 5, "colour": "red"}}, never_taken
        )
        assert toxic.attributes == {"latency": 5, "jitter": 0}

    def test_checks_run_in_toxiproxy_order(self) -> None:
        """A bad stream is reported before a bad type, a duplicate before bad attributes."""
        with pytest.raises(ApiError, match="stream was invalid"):
            parse_new_toxic({"type": "walrus", "stream": "x"}, never_taken)
        with pytest.raises(ApiError, match="toxic already exists") as caught:
            parse_new_toxic({"type": "latency", "attributes": {"latency": "x"}}, lambda name: True)
        assert caught.value.status == 409

    @pytest.mark.parametrize(
        ("body", "needle"),
        [
            ([], "expected a JSON object"),
            ({"type": "latency", "name": 1}, "field 'name'"),
            ({"type": "latency", "toxicity": True}, "field 'toxicity'"),
            ({"type": "latency", "attributes": {"jitter": 2**63}}, "'jitter'"),
            ({"type": "latency", "attributes": {"jitter": False}}, "'jitter'"),
        ],
    )
    def test_bad_input_names_the_field(self, body: object, needle: str) -> None:
        """Every rejected field is named in a 400 "bad request body" message."""
        with pytest.raises(ApiError, match=needle) as caught:
            parse_new_toxic(body, never_taken)
        assert caught.value.status == 400
        assert caught.value.message.startswith("bad request body")

    def test_every_type_is_registered(self) -> None:
        """The documented toxic types, plus noop, are all known."""
        assert set(TOXIC_TYPES) == {
            "noop",
            "latency",
            "bandwidth",
            "slow_close",
            "timeout",
            "reset_peer",
            "slicer",
            "limit_data",
        }


class TestApplyToxicUpdate:
    """Updating attributes and toxicity of an existing toxic."""

    def test_merges_attributes(self) -> None:
        """Attributes left out keep their value; toxicity changes only when given."""
        toxic = parse_new_toxic(
            {"type": "latency", "toxicity": 0.3, "attributes": {"latency": 1, "jitter": 2}},
            never_taken,
        )
        apply_toxic_update(toxic, {"attributes": {"latency": 9}})
        assert toxic.attributes == {"latency": 9, "jitter": 2}
        assert toxic.toxicity == pytest.approx(0.3)

    def test_rejected_update_changes_nothing(self) -> None:
        """A bad attribute rejects the whole update, toxicity included."""
        toxic = parse_new_toxic({"type": "latency"}, never_taken)
        with pytest.raises(ApiError):
            apply_toxic_update(toxic, {"toxicity": 0.1, "attributes": {"latency": "slow"}})
        assert toxic.toxicity == 1.0
        assert toxic.attributes == {"latency": 0, "jitter": 0}


class TestSlicePoints:
    """How the slicer cuts a buffer."""

    @given(
        size=st.integers(min_value=1, max_value=5000),
        average=st.integers(min_value=-5, max_value=300),
        variation=st.integers(min_value=-5, max_value=400),
        seed=st.integers(min_value=0, max_value=2**32),
    )
    def test_pieces_cover_the_buffer(
        self, size: int, average: int, variation: int, seed: int
    ) -> None:
        """Cuts start at 0, end at size, never repeat, and no piece is over avg+var."""
        bounds = slice_points(size, average, variation, random.Random(seed))
        assert bounds[0] == 0 and bounds[-1] == size
        pieces = [b - a for a, b in itertools.pairwise(bounds)]
        assert all(piece >= 1 for piece in pieces)
        assert max(pieces) <= max(max(average, 1) + max(variation, 0), 1)

    def test_zero_variation_gives_even_pieces(self) -> None:
        """Without variation 100 bytes at average 10 are cut into ten-ish pieces."""
        bounds = slice_points(100, 10, 0, random.Random(1))
        pieces = [b - a for a, b in itertools.pairwise(bounds)]
        assert sum(pieces) == 100
        assert all(5 <= piece <= 10 for piece in pieces)


class TestAddresses:
    """host:port parsing as Go's net package does it."""

    @pytest.mark.parametrize(
        ("text", "parsed"),
        [
            ("127.0.0.1:8474", ("127.0.0.1", 8474)),
            ("localhost:0", ("localhost", 0)),
            (":26379", ("", 26379)),
            ("[::1]:443", ("::1", 443)),
        ],
    )
    def test_valid(self, text: str, parsed: tuple[str, int]) -> None:
        """Host and port come apart; IPv6 keeps its brackets out."""
        assert split_host_port(text) == parsed
        assert join_host_port(*parsed) == text

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("local373", "address local373: missing port in address"),
            ("::1:80", "address ::1:80: too many colons in address"),
            ("host:port", "address host:port: invalid port 'port'"),
            ("host:70000", "address host:70000: invalid port '70000'"),
            ("[::1]", "address [::1]: missing port in address"),
        ],
    )
    def test_invalid_names_the_address(self, text: str, message: str) -> None:
        """A malformed address is an error that quotes it and says what is wrong."""
        with pytest.raises(ValueError) as caught:
            split_host_port(text)
        assert str(caught.value) == message


class TestChannel:
    """The queue between toxic stages."""

    async def test_order_and_put_front(self) -> None:
        """Items come out in order; a given-back item comes out first."""
        channel = Channel()
        first, second = Chunk(b"1", 0.0), Chunk(b"2", 0.0)
        channel.put(first)
        channel.put(END)
        channel.put_front(second)
        assert [await channel.get() for _ in range(3)] == [second, first, END]

    async def test_cancelled_get_loses_nothing(self) -> None:
        """A get cancelled while the item is arriving leaves the item in the channel."""
        channel = Channel()
        waiter = asyncio.create_task(channel.get())
        await asyncio.sleep(0)
        item = Chunk(b"x", 0.0)
        channel.put(item)
        waiter.cancel()
        await asyncio.wait([waiter])
        assert waiter.cancelled()
        assert len(channel) == 1
        assert await channel.get() is item
