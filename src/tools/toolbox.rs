//! The tools of one answer, as the Bedrock layer calls them.

use super::{builtin, mcp::McpHub, CALCULATOR, CURRENT_TIME, FETCH_URL, SEARCH_CONVERSATIONS};
use crate::{
    bedrock::{Approval, ToolRunner, ToolSpec},
    chat::approvals::Approvals,
    conversations::store::Store,
};
use futures::{future::BoxFuture, FutureExt};
use serde_json::{json, Value};
use std::{sync::Arc, time::Duration};

/// What the tools of an answer may use: the owner's store (the search
/// leaves out the conversation asking, which the model has already), and
/// the user's time zone.
pub struct Toolbox {
    store: Store,
    mcp: McpHub,
    /// The tools whose calls wait for the user, and where they wait.
    approvals: Option<NeedsApproval>,
    /// `fetch_url` may read private addresses.
    fetch_private: bool,
    owner: String,
    conversation_id: String,
    time_zone: Option<String>,
}

impl Toolbox {
    pub fn new(
        store: Store,
        mcp: McpHub,
        owner: &str,
        conversation_id: &str,
        time_zone: Option<String>,
    ) -> Self {
        Self {
            store,
            mcp,
            approvals: None,
            fetch_private: false,
            owner: owner.to_owned(),
            conversation_id: conversation_id.to_owned(),
            time_zone,
        }
    }
}

/// Which calls wait for the user's decision, where, and how long.
pub struct NeedsApproval {
    pub approvals: Approvals,
    pub needs: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    pub timeout: Duration,
}

impl Toolbox {
    /// Lets `fetch_url` read private and loopback addresses.
    pub fn fetch_private(mut self, allow: bool) -> Self {
        self.fetch_private = allow;
        self
    }

    /// Calls of the tools `needs` names wait for a decision in `approvals`.
    pub fn with_approvals(mut self, needs: NeedsApproval) -> Self {
        self.approvals = Some(needs);
        self
    }
}

impl ToolRunner for Toolbox {
    fn approval(&self, name: &str, call_id: &str) -> Option<BoxFuture<'static, Approval>> {
        let needs = self.approvals.as_ref()?;
        (needs.needs)(name).then(|| needs.approvals.wait(call_id, needs.timeout))
    }

    fn call(&self, name: &str, input: Value) -> BoxFuture<'static, Result<String, String>> {
        match name {
            CURRENT_TIME => {
                let result = builtin::current_time(&input, self.time_zone.as_deref());
                async move { result }.boxed()
            }
            CALCULATOR => builtin::calculate(input).boxed(),
            FETCH_URL => super::fetch::fetch(input, self.fetch_private).boxed(),
            SEARCH_CONVERSATIONS => builtin::search(
                self.store.clone(),
                self.owner.clone(),
                self.conversation_id.clone(),
                input,
            )
            .boxed(),
            other => match self.mcp.call(other, input) {
                Some(call) => call.boxed(),
                None => {
                    let other = other.to_owned();
                    async move { Err(format!("The tool {other:?} is not available on this server.")) }.boxed()
                }
            },
        }
    }
}

/// What the model is told of the tools named (in that order): built-in ones,
/// then those of the MCP servers named.
pub fn specs(names: &[String], mcp: &McpHub) -> Vec<ToolSpec> {
    let mut specs: Vec<ToolSpec> = names.iter().filter_map(|name| spec(name)).collect();
    specs.extend(mcp.specs(names));
    specs
}

fn spec(name: &str) -> Option<ToolSpec> {
    let (description, schema) = match name {
        CURRENT_TIME => (
            "The current date, time and weekday. Without arguments it answers in the user's own time zone.",
            json!({
                "type": "object",
                "properties": {
                    "time_zone": {
                        "type": "string",
                        "description": "An IANA time zone such as \"Asia/Seoul\" or \"Europe/Paris\", when the user asks about another place."
                    }
                }
            }),
        ),
        CALCULATOR => (
            "Evaluates a math expression exactly (arbitrary precision): arithmetic, powers, roots, trigonometry, percentages, and unit conversions such as \"5 miles to km\" or \"100 USD/h * 7.5 h\" (no currencies). Use it for any calculation instead of working it out yourself.",
            json!({
                "type": "object",
                "properties": {
                    "expression": { "type": "string", "description": "The expression, e.g. \"(3/7) * 2^40\" or \"37 degC to degF\"." }
                },
                "required": ["expression"]
            }),
        ),
        SEARCH_CONVERSATIONS => (
            "Searches the user's other conversations (not this one) for messages containing the given words, newest first, with their conversation's title and date.",
            json!({
                "type": "object",
                "properties": {
                    "query": { "type": "string", "description": "Words the messages contain." },
                    "limit": { "type": "integer", "minimum": 1, "maximum": 20, "description": "At most this many matches (default 5)." }
                },
                "required": ["query"]
            }),
        ),
        FETCH_URL => (
            "Fetches a public web address (http or https) and returns its text, up to 512 KB: pages, JSON, plain files. Private and local network addresses are refused.",
            json!({
                "type": "object",
                "properties": {
                    "url": { "type": "string", "description": "The full address, e.g. \"https://example.com/page\"." }
                },
                "required": ["url"]
            }),
        ),
        _ => return None,
    };
    Some(ToolSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        input_schema: schema,
    })
}
