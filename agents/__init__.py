"""gar-agent's planner: a LangGraph agent that answers visual questions with the gar tools.

::

    from gar_agents import Planner
    from gar_tool.tools import GARToolkit

    kit = GARToolkit.load(model="HaochenWang/GAR-1B", detector="IDEA-Research/grounding-dino-tiny",
                          segmenter="sam")
    result = Planner(kit, "openai:gpt-4o-mini").ask("photo.jpg", "What is the man on the left holding?")
    for event in Planner(kit, "openai:gpt-4o-mini").stream("photo.jpg", "..."):
        print(event.to_dict())      # tool_call / tool_result / answer / error
"""

from .events import AnswerEvent, ErrorEvent, PlannerEvent, ToolCallFinished, ToolCallStarted
from .evidence import Evidence, GARExchange, PlannerResult, Step
from .models import DEFAULT_PLANNER, make_chat_model
from .planner import Planner, PlannerError

__all__ = ["Planner", "PlannerError", "PlannerResult", "Evidence", "GARExchange", "Step",
           "PlannerEvent", "ToolCallStarted", "ToolCallFinished", "AnswerEvent", "ErrorEvent",
           "make_chat_model", "DEFAULT_PLANNER"]
