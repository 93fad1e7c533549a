"""fluid history: stores every state of every run and answers history queries."""
