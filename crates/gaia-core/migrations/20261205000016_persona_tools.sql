-- The tool sources a persona may use in chat turns (a JSON array of source names: `kb`, MCP server
-- names, `world`); NULL: the default (the knowledge base's tools).
ALTER TABLE personas ADD COLUMN tools TEXT;
