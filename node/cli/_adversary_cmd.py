"""`stateless devnet adversary MODE`: a misbehaving peer process, for devnets and demonstrations.

`stateless devnet up --mode I=MODE` starts these in place of honest nodes. The peer speaks our protocols
but lies in the way MODE says (devnet/_adversary.py); it prints a banner like `node start` (peer id,
libp2p addresses, mode, then `ready`) and runs until Ctrl-C. It has no gRPC service.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any, Final

import trio

from devnet._modes import ADVERSARY_MODES
from node.cli._node_cmd import (
    LOG_LEVELS,
    add_multiaddrs_arg,
    configure_logging,
    only_keyboard_interrupts,
    port_arg,
)
from node.cli._output import UsageError
from node.config import NETWORKS

MAX_SYBILS: Final = 1024


def sybils_arg(text: str) -> int:
    """argparse type: a number of eclipse sybils, 1 to MAX_SYBILS."""
    if not text.isdigit() or not 1 <= int(text) <= MAX_SYBILS:
        raise argparse.ArgumentTypeError(f"sybils must be an integer from 1 to {MAX_SYBILS}, got {text!r}")
    return int(text)


async def _run(args: argparse.Namespace) -> None:
    from devnet._adversary import DEFAULT_SYBILS, AdversaryReady, run_adversary

    genesis = args.genesis.resolve() if args.genesis is not None else None

    async def body(task_status: trio.TaskStatus[AdversaryReady] = trio.TASK_STATUS_IGNORED) -> None:
        await run_adversary(
            args.mode,
            args.data_dir.resolve(),
            bootstrap=args.bootstrap,
            genesis=genesis,
            network_name=args.network,
            network_id=NETWORKS[args.network],
            listen_port=args.gossip_port,
            sybils=args.sybils if args.sybils is not None else DEFAULT_SYBILS,
            task_status=task_status,
        )

    async with trio.open_nursery() as nursery:
        ready: AdversaryReady = await nursery.start(body)
        out = sys.stdout
        print(f"stateless adversary ({ready.mode}) on {args.network}", file=out)
        print(f"  peer id    {ready.peer_id}", file=out)
        for addr in ready.listen_addrs:
            print(f"  libp2p     {addr}", file=out)
        print(f"  mode       {ready.mode}", file=out)
        for target in ready.targets:
            print(f"  target     {target}", file=out)
        print(f"  data dir   {args.data_dir.resolve()}", file=out)
        print("ready (Ctrl-C to stop)", file=out, flush=True)


def _cmd_adversary(args: argparse.Namespace) -> int:
    if args.mode not in ADVERSARY_MODES:
        raise UsageError(f"unknown adversary mode {args.mode!r}; known: {', '.join(ADVERSARY_MODES)}")
    if args.mode == "eclipse" and not args.bootstrap:
        raise UsageError("eclipse needs at least one --bootstrap address to besiege")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    configure_logging(args.log_level)
    try:
        trio.run(_run, args)
    except BaseException as e:
        if not only_keyboard_interrupts(e):
            raise
    print("stopped", flush=True)
    return 0


def register(sub: Any) -> None:
    """Add `adversary` to the `devnet` subcommands."""
    modes = "; ".join(f"{name}: {what}" for name, what in ADVERSARY_MODES.items())
    adversary = sub.add_parser(
        "adversary",
        help="run a misbehaving peer (forge, withhold, flood, lie, eclipse) until Ctrl-C",
        description=f"Run a peer that attacks the network in one way until Ctrl-C. Modes: {modes}.",
    )
    adversary.add_argument("mode", metavar="MODE", help=f"one of {', '.join(ADVERSARY_MODES)}")
    adversary.add_argument(
        "--data-dir", type=Path, required=True, metavar="DIR", help="peer keys (of the sybils too) and logs"
    )
    adversary.add_argument(
        "--network", choices=list(NETWORKS), default="devnet", help="network to attack (default devnet)"
    )
    adversary.add_argument(
        "--gossip-port", type=port_arg, default=0, metavar="PORT", help="libp2p port (default 0: any)"
    )
    add_multiaddrs_arg(adversary, "--bootstrap", "honest nodes to connect to (eclipse: the nodes to besiege)")
    adversary.add_argument(
        "--genesis",
        type=Path,
        default=None,
        metavar="FILE",
        help="the devnet's genesis: forged messages claim a signer registered there",
    )
    adversary.add_argument(
        "--sybils",
        type=sybils_arg,
        default=None,
        metavar="N",
        help="eclipse: how many sybil identities, each connecting to every target (default 24)",
    )
    adversary.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="log verbosity (default info)"
    )
    adversary.set_defaults(handler=_cmd_adversary)
