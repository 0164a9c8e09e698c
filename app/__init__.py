"""The Chainlit chat UI over the agent graph (`distillgraph chat`) and its chat-history tools."""
