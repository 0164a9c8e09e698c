"""Prompt and reply text of the agent graph (constants only).

The prompts themselves live in `data_loaders.serialize`, next to the training data format:
qa, summarizer and validator use `build_messages(context, question)`, and the router uses
`build_route_messages(query)` (``ROUTER_SYSTEM`` + ``ROUTER_USER``), the exact prompts the student
was trained on (distillation adds routing examples: ``distill`` key ``routing_share``). The
routing prompt holds the user's query only, never table content, so a cell cannot steer the route.
"""

from data_loaders.serialize import ROUTE_TASKS

# The labels scored by the router: the dataset's `task` values, mapped to graph nodes.
ROUTER_LABELS = dict(zip(ROUTE_TASKS, ("qa", "summarizer", "validator"), strict=True))

# Keyword rules used when the model cannot score labels or is not confident. Checked in order:
# a claim wins over a summary word ("is it true that the overview ...").
VALIDATE_PATTERNS = (
    r"\bis it (?:true|correct|right|the case)\b",
    r"\btrue or false\b",
    r"\banswer yes or no\b",
    r"\b(?:yes or no|yes/no)\s*[:?]",
    r"\bis (?:this|that) (?:correct|true|right|accurate)\b",
    r"\b(?:true|false)\s*\?\s*$",
    r"\b(?:verify|validate|fact[- ]?check|confirm)\b",
    r"\bcheck (?:whether|if|that)\b",
    r"\b(?:claim|claims|claimed)\b",
    r"\bcorrect that\b",
    r"^\s*(?:is|are|does|do|did|has|have|was|were) it (?:true|so)\b",
    # a statement with a tag question: "X has 8 cylinders, right?", "... isn't it?"
    r"(?<!\bthe )\b(?:right|correct|true|yes|no|isn'?t it|aren'?t they|don'?t they|doesn'?t it)"
    r"\s*\?+\s*$",
    # ... and typed without the question mark, after a comma: "X has 8 cylinders, right"
    r",\s*(?:right|correct|true|yes|isn'?t it|aren'?t they|don'?t they|doesn'?t it)\s*$",
)
SUMMARIZE_PATTERNS = (
    r"\bsummari[sz]e\b",
    r"\bsummary\b",
    r"\bdescribe\b",
    r"\bdescription\b",
    r"\boverview\b",
    r"\btell me about\b",
    r"\bprofile of\b",
    r"\bwhat do (?:we|you) know about\b",
    r"\bgive me (?:a |an )?(?:rundown|brief)\b",
    r"\binfo(?:rmation)? (?:on|about)\b",
)

# Replies the graph writes itself.
EMPTY_INPUT_REPLY = "Please ask a question about the table (the message was empty)."
TOO_LONG_REPLY = (
    "Your message is {n} characters long; the limit is {limit}. Please ask a shorter question."
)
NOT_FOUND_REPLY = (
    "I could not find anything matching your question in the table{s} ({tables}). "
    "Check the name's spelling; for example, the table has: {examples}."
)
UNSUPPORTED_REPLY = (
    'I could not give an answer that the table supports. The model suggested "{answer}", '
    "but {reason}. The closest rows are:\n{rows}"
)
CUT_NOTE = " [cut: the {limit:g} s generation time limit was reached]"
MODEL_CLAIM_NOTE = " (checked by the model, not by a table lookup)"

# Before trusting its scores, the router asks the model to label these; one miss and it routes
# by the rules instead (a model never taught to route, or a random test model, scores
# confidently but wrongly).
ROUTER_PROBES = (
    ("What is the price of the blue model?", "qa"),
    ("How many items have color red?", "qa"),
    ("Summarize the row for the blue model.", "summarize"),
    ("Give an overview of the items with color red.", "summarize"),
    ("Is it true that the blue model costs 12?", "validate"),
    ("Claim: the weight of the red model is 3. Is this correct?", "validate"),
)

# A turn naming no entity but using one of these refers to the previous turn's entity.
FOLLOW_UP_PATTERNS = (
    r"^\s*(?:and|also|what about|how about)\b",
    r"\b(?:its|it|it's|that one|this one|the same one|same)\b",
    r"\b(?:their|they|them|that|this)\b",
)
# The words of a follow-up that the previous turn's entity replaces. ``{nouns}`` is filled with
# the tables' row nouns (`data_loaders.templates.entity_noun`), so "that airport" and "this
# entry" resolve without any table's noun written here.
PRONOUN_PATTERN = r"\b(?:that one|this one|(?:that|this) (?:{nouns})|its|it)\b"
