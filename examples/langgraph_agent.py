"""Your own LLM + gar-agent's tools in a LangChain agent (a LangGraph graph underneath).

    python examples/langgraph_agent.py IMAGE "What is the person on the left holding?" \
        --llm gpt-4o-mini [--base-url http://127.0.0.1:8000/v1]   # any OpenAI-compatible server

Needs the GAR, Grounding DINO and SAM checkpoints (--model / --detector / --segmenter: local
directories or hub ids) and an OpenAI-compatible chat endpoint (OPENAI_API_KEY for OpenAI). The chat
model is ``CompatChatOpenAI`` (LangChain's ``ChatOpenAI`` with request bodies that llama.cpp, vLLM and
other OpenAI-compatible servers accept); any LangChain chat model with tool calling works.
"""

import argparse
import os

from langchain.agents import create_agent

from gar_agents.openai_compat import CompatChatOpenAI

from gar_tool.media.images import load_image
from gar_tool.integrations.langchain import get_tools
from gar_tool.tools import GARToolkit


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("image")
    p.add_argument("question")
    p.add_argument("--llm", default="gpt-4o-mini")
    p.add_argument("--base-url", default=None)
    p.add_argument("--model", default="HaochenWang/GAR-1B")
    p.add_argument("--detector", default="IDEA-Research/grounding-dino-tiny")
    p.add_argument("--segmenter", default="sam")
    args = p.parse_args()

    kit = GARToolkit.load(model=args.model, detector=args.detector, segmenter=args.segmenter)
    image_id = kit.store.put_image(load_image(args.image)).image_id
    llm = CompatChatOpenAI(model=args.llm, base_url=args.base_url, api_key=os.environ.get("OPENAI_API_KEY", "none"))
    agent = create_agent(llm, get_tools(kit, include_overlay=False),
                         system_prompt=f"Use the gar tools on image {image_id} (pass it as 'image'); cite region ids.")
    state = agent.invoke({"messages": [("user", args.question)]}, {"recursion_limit": 20})
    print(state["messages"][-1].content)


if __name__ == "__main__":
    main()
