"""History cost of a long agent turn, with the default settings.

Drives one conversation through `[[loop N]]` (the scripted model calls a tool N
times, then answers) and reports: history events and bytes per agent step, steps per
run before continue-as-new fires, and the LLM input size with and without trimming.
Writes bench/results/history_size.json.

    .venv/bin/python bench/history_size.py [--steps 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import django_setup, in_process_stack, users_create  # noqa: E402

RESULTS = ROOT / "bench" / "results"


async def measure(steps: int, users) -> dict:  # type: ignore[no-untyped-def]
    from django.conf import settings

    from chatapp import services
    from chatapp.models import Message
    from temporal_worker import client as temporal_client
    from temporal_worker.context import approx_tokens
    from temporal_worker.contracts.conversation import (
        LLM_ACTIVITY,
        ChatMessage,
        conversation_workflow_id,
    )
    from temporal_worker.llm_gateway import to_openai_messages

    with tempfile.TemporaryDirectory() as var_dir:
        async with in_process_stack(var_dir, users) as stack:
            # Everything default except that one turn may take `steps` model calls.
            settings.AGENT_MAX_STEPS_PER_TURN = steps + 5
            conversation_id = uuid.uuid4()
            await services.message_send(
                user=users.owner,
                conversation_id=conversation_id,
                message_id=uuid.uuid4(),
                text=f"[[loop {steps}]] run the long job",
            )
            cid = str(conversation_id)
            while True:
                live = await temporal_client.conversation_live_state(conversation_id=cid)
                done = await Message.objects.filter(
                    conversation_id=cid, role="assistant", tool_calls=[]
                ).aexists()
                if done and live is not None and live.status == "idle":
                    break
                await asyncio.sleep(0.5)

            client = stack.client
            workflow_id = conversation_workflow_id(cid)
            runs = [e async for e in client.list_workflows(f'WorkflowId = "{workflow_id}"')]
            runs.sort(key=lambda e: e.start_time)
            per_run = []
            largest_llm_input = 0
            for run in runs:
                history = await client.get_workflow_handle(
                    workflow_id, run_id=run.run_id
                ).fetch_history()
                llm_steps = 0
                for event in history.events:
                    attrs = event.activity_task_scheduled_event_attributes
                    if attrs.activity_type.name == LLM_ACTIVITY:
                        llm_steps += 1
                        size = sum(len(p.data) for p in attrs.input.payloads)
                        largest_llm_input = max(largest_llm_input, size)
                per_run.append(
                    {
                        "events": len(history.events),
                        "bytes": sum(len(e.SerializeToString()) for e in history.events),
                        "llm_steps": llm_steps,
                    }
                )
            total_steps = sum(r["llm_steps"] for r in per_run)
            total_events = sum(r["events"] for r in per_run)
            total_bytes = sum(r["bytes"] for r in per_run)

            # Without trimming the model would see the whole transcript every call.
            transcript = [
                ChatMessage(
                    id=str(m.id),
                    seq=m.seq,
                    role=m.role,
                    content=m.content,
                    tool_call_id=m.tool_call_id,
                    tool_name=m.tool_name,
                )
                async for m in Message.objects.filter(conversation_id=cid).order_by("seq")
            ]
            untrimmed = len(json.dumps(to_openai_messages("", transcript)))
            return {
                "steps": steps,
                "runs": len(per_run),
                "per_run": per_run,
                "llm_steps": total_steps,
                "events_per_step": round(total_events / total_steps, 1),
                "bytes_per_step": round(total_bytes / total_steps),
                "steps_per_run_default": settings.AGENT_STEPS_PER_RUN,
                "llm_input_bytes_trimmed_max": largest_llm_input,
                "llm_input_bytes_untrimmed_last": untrimmed,
                "untrimmed_tokens_last": approx_tokens(transcript),
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    var = tempfile.mkdtemp(prefix="bench-history-")
    django_setup(var)
    users = users_create()
    result = asyncio.run(measure(args.steps, users))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "history_size.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_run"}, indent=2))
    for index, run in enumerate(result["per_run"], start=1):
        print(
            f"run {index}: {run['llm_steps']} LLM steps, {run['events']} events, "
            f"{run['bytes']:,} bytes"
        )


if __name__ == "__main__":
    main()
