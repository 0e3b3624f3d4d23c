#!/usr/bin/env python3
"""LangGraph peer for the workflow-run benchmark.

Runs a fixed 10-node LangGraph StateGraph (2 non-streaming LLM calls through
langchain-openai's ChatOpenAI against an OpenAI-compatible server) N times
with C runs in flight (asyncio), for R rounds, and reports runs per second of
the median round plus LangGraph's per-node overhead with the LLM stubbed out.

    $PY bench.py --json --base-url URL [--runs 200] [--concurrency 16]
        [--rounds 3] [--postgres DSN] [--durability sync|async|exit]

URL is handed to ChatOpenAI(base_url=...) unchanged; the OpenAI client appends
"/chat/completions", so for a server answering POST /v1/chat/completions pass
e.g. http://127.0.0.1:8080/v1.

Without --postgres the graph is compiled without a checkpointer (in memory,
not durable). With --postgres DSN it is compiled with AsyncPostgresSaver
(langgraph-checkpoint-postgres, on a psycopg AsyncConnectionPool of
--concurrency connections) and every run gets its own thread_id, so every
superstep (= every node here, the graph is a chain) is checkpointed. The
default durability "sync" persists each checkpoint before the next node
starts (LangGraph's own default is "async"). The benchmark's threads are
deleted afterwards (not timed) unless --keep-threads.
"""

from __future__ import annotations

import os

# No LangSmith tracing / network calls besides the LLM server and PostgreSQL.
os.environ.setdefault("LANGSMITH_TRACING", "false")
os.environ.setdefault("LANGCHAIN_TRACING_V2", "false")

import argparse
import asyncio
import importlib.metadata
import json
import platform
import statistics
import sys
import time
import uuid
from typing import Annotated, Any, Awaitable, Callable, TypedDict

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

NODES_PER_RUN = 10
LLM_CALLS_PER_RUN = 2
THREAD_PREFIX = "cw-lg-bench-"


def log(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


class RunState(TypedDict, total=False):
    inputs: dict[str, Any]
    messages: Annotated[list[BaseMessage], add_messages]
    variables: dict[str, Any]
    last_response: str
    tool_calls: bool
    response: str


LlmCall = Callable[[list[BaseMessage]], Awaitable[AIMessage]]


def reply_text(msg: AIMessage) -> str:
    content = msg.content
    if isinstance(content, str):
        return content
    # List-of-blocks content: join the text blocks.
    return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)


def build_graph(llm_call: LlmCall) -> StateGraph:
    """start → set_topic → ask → check ─(tool calls)→ summarize
                                       └(else)→ count → remember → summarize
       summarize → pause → log → end"""

    async def start(state: RunState) -> dict:
        return {}

    async def set_topic(state: RunState) -> dict:
        return {"variables": {**state["variables"], "topic": state["inputs"]["topic"]}}

    async def ask(state: RunState) -> dict:
        topic = state["variables"]["topic"]
        reply = await llm_call([SystemMessage("You are terse."),
                                HumanMessage(f"Tell me about {topic}")])
        return {"messages": [reply], "last_response": reply_text(reply),
                "tool_calls": bool(reply.tool_calls)}

    async def check(state: RunState) -> dict:
        return {}

    def route(state: RunState) -> str:
        return "summarize" if state.get("tool_calls") else "count"

    async def count(state: RunState) -> dict:
        v = state["variables"]
        return {"variables": {**v, "n": v["n"] + 1}}

    async def remember(state: RunState) -> dict:
        v = state["variables"]
        return {"variables": {**v, "notes": [*v["notes"], state["last_response"]]}}

    async def summarize(state: RunState) -> dict:
        reply = await llm_call([HumanMessage(f"Summarize: {state['last_response']}")])
        return {"messages": [reply], "last_response": reply_text(reply),
                "tool_calls": bool(reply.tool_calls)}

    async def pause(state: RunState) -> dict:
        await asyncio.sleep(0)  # a 0 ms delay
        return {}

    async def log_node(state: RunState) -> dict:
        return {"variables": {**state["variables"], "done": True}}

    async def end(state: RunState) -> dict:
        return {"response": state["last_response"]}

    g = StateGraph(RunState)
    g.add_node("start", start)
    g.add_node("set_topic", set_topic)
    g.add_node("ask", ask)
    g.add_node("check", check)
    g.add_node("count", count)
    g.add_node("remember", remember)
    g.add_node("summarize", summarize)
    g.add_node("pause", pause)
    g.add_node("log", log_node)
    g.add_node("end", end)
    g.add_edge(START, "start")
    g.add_edge("start", "set_topic")
    g.add_edge("set_topic", "ask")
    g.add_edge("ask", "check")
    g.add_conditional_edges("check", route, {"summarize": "summarize", "count": "count"})
    g.add_edge("count", "remember")
    g.add_edge("remember", "summarize")
    g.add_edge("summarize", "pause")
    g.add_edge("pause", "log")
    g.add_edge("log", "end")
    g.add_edge("end", END)
    return g


def initial_state(i: int) -> RunState:
    return {
        "inputs": {"topic": f"topic {i}"},
        "messages": [],
        "variables": {"n": 0, "notes": []},
        "last_response": "",
        "tool_calls": False,
    }


def check_result(out: dict) -> None:
    v = out.get("variables") or {}
    if not (v.get("done") is True and v.get("n") == 1 and len(v.get("notes", [])) == 1
            and isinstance(out.get("response"), str) and len(out.get("messages", [])) == 2):
        raise RuntimeError(f"unexpected final state: {out!r}")


class Runner:
    def __init__(self, graph, checkpointer, durability: str | None):
        self.graph = graph
        self.checkpointer = checkpointer
        self.durability = durability
        self.thread_ids: list[str] = []

    def config(self) -> dict:
        if self.checkpointer is None:
            return {}
        tid = THREAD_PREFIX + uuid.uuid4().hex
        self.thread_ids.append(tid)
        return {"configurable": {"thread_id": tid}}

    async def run(self, i: int) -> dict:
        kw = {"durability": self.durability} if self.checkpointer is not None else {}
        return await self.graph.ainvoke(initial_state(i), self.config(), **kw)

    async def count_nodes(self) -> int:
        """One run streaming "updates": how many node executions it had."""
        kw = {"durability": self.durability} if self.checkpointer is not None else {}
        seen = 0
        async for chunk in self.graph.astream(initial_state(0), self.config(),
                                              stream_mode="updates", **kw):
            seen += len(chunk)
        return seen


async def timed_concurrent(runner: Runner, runs: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            check_result(await runner.run(i))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(runs)))
    return time.perf_counter() - t0


async def timed_sequential(runner: Runner, runs: int) -> float:
    t0 = time.perf_counter()
    for i in range(runs):
        check_result(await runner.run(i))
    return time.perf_counter() - t0


async def amain(args) -> dict:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=args.base_url, api_key="bench", model="bench", max_retries=0)

    async def real_llm(messages: list[BaseMessage]) -> AIMessage:
        return await llm.ainvoke(messages)

    async def instant_llm(messages: list[BaseMessage]) -> AIMessage:
        return AIMessage(content="ok")

    real_g = build_graph(real_llm)
    stub_g = build_graph(instant_llm)

    pool = None
    checkpointer = None
    if args.postgres:
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        pool = AsyncConnectionPool(
            args.postgres, min_size=args.concurrency, max_size=args.concurrency,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            open=False)
        await pool.open(wait=True)
        checkpointer = AsyncPostgresSaver(pool)
        await checkpointer.setup()

    durability = args.durability if checkpointer is not None else None
    real = Runner(real_g.compile(checkpointer=checkpointer), checkpointer, durability)
    stub = Runner(stub_g.compile(checkpointer=checkpointer), checkpointer, durability)

    try:
        # Sanity + warm-up (not timed): the run executes exactly 10 nodes, and
        # a few runs of each graph so connections and caches are warm.
        for r in (real, stub):
            n = await r.count_nodes()
            if n != NODES_PER_RUN:
                raise RuntimeError(f"expected {NODES_PER_RUN} node executions per run, got {n}")
        await timed_concurrent(real, min(args.runs, 2 * args.concurrency), args.concurrency)
        await timed_sequential(stub, 20)

        rounds_rps: list[float] = []
        overhead_us: list[float] = []
        for r in range(args.rounds):
            secs = await timed_concurrent(real, args.runs, args.concurrency)
            rounds_rps.append(args.runs / secs)
            osecs = await timed_sequential(stub, args.overhead_runs)
            overhead_us.append(osecs / args.overhead_runs / NODES_PER_RUN * 1e6)
            log(f"round {r + 1}: {args.runs} runs in {secs:.3f} s = {rounds_rps[-1]:.1f} runs/s; "
                f"stubbed-LLM overhead {overhead_us[-1]:.1f} us/node "
                f"({osecs / args.overhead_runs * 1e3:.3f} ms/run)")

        if checkpointer is not None and not args.keep_threads:
            ids = real.thread_ids + stub.thread_ids
            sem = asyncio.Semaphore(args.concurrency)

            async def drop(tid: str) -> None:
                async with sem:
                    await checkpointer.adelete_thread(tid)

            await asyncio.gather(*(drop(t) for t in ids))
            log(f"deleted {len(ids)} benchmark threads from PostgreSQL")
    finally:
        if pool is not None:
            await pool.close()

    version = importlib.metadata.version("langgraph")
    log(f"langgraph {version}, langchain-openai {importlib.metadata.version('langchain-openai')}, "
        f"langchain-core {importlib.metadata.version('langchain-core')}, "
        f"python {platform.python_version()}, platform {platform.platform()}")
    result = {
        "system": "langgraph",
        "version": version,
        "checkpointer": "postgres" if checkpointer is not None else "none",
        "runs": args.runs,
        "concurrency": args.concurrency,
        "nodes_per_run": NODES_PER_RUN,
        "llm_calls_per_run": LLM_CALLS_PER_RUN,
        "runs_per_s": round(statistics.median(rounds_rps), 3),
        "rounds": [round(x, 3) for x in rounds_rps],
        "per_node_overhead_us": round(statistics.median(overhead_us), 3),
    }
    if checkpointer is not None:
        result["durability"] = durability
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description="LangGraph workflow-run benchmark peer")
    ap.add_argument("--base-url", required=True,
                    help="OpenAI-compatible base URL incl. /v1 (ChatOpenAI base_url)")
    ap.add_argument("--runs", type=int, default=200, help="runs per round (default 200)")
    ap.add_argument("--concurrency", type=int, default=16, help="runs in flight (default 16)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    ap.add_argument("--postgres", default=None, metavar="DSN",
                    help="checkpoint every node with AsyncPostgresSaver on this database")
    ap.add_argument("--durability", choices=["sync", "async", "exit"], default="sync",
                    help="LangGraph durability mode with --postgres (default sync)")
    ap.add_argument("--overhead-runs", type=int, default=200,
                    help="sequential stubbed-LLM runs per round for per_node_overhead_us (default 200)")
    ap.add_argument("--keep-threads", action="store_true",
                    help="with --postgres, do not delete the benchmark's threads afterwards")
    ap.add_argument("--json", action="store_true",
                    help="print one JSON object on the last stdout line")
    args = ap.parse_args()
    if args.runs < 1 or args.concurrency < 1 or args.rounds < 1 or args.overhead_runs < 1:
        ap.error("--runs, --concurrency, --rounds and --overhead-runs must be >= 1")

    result = asyncio.run(amain(args))
    summary = (f"{result['system']} {result['version']} checkpointer={result['checkpointer']}: "
               f"{result['runs_per_s']:.1f} runs/s (median of {args.rounds}), "
               f"{result['per_node_overhead_us']:.1f} us/node overhead")
    if args.json:
        log(summary)
        print(json.dumps(result), flush=True)
    else:
        print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
