//! An answer that may take several rounds: when the model stops to call
//! tools, the calls run (concurrently, each bounded in time), their results
//! go back to the model with its own message unchanged (signed reasoning
//! included), and the answer continues, up to `max_rounds` times.
//!
//! Invariants:
//! * `toolConfig` is sent on every round (Bedrock refuses a history with
//!   tool blocks without it).
//! * A call of a tool that is not offered, arguments that are not a JSON
//!   object, a tool that fails or does not answer in time: each becomes an
//!   error result the model reads, never a failed answer.
//! * Only the last round's stop reason is passed on, and usage is passed on
//!   once, summed over every round, just before the end.
//! * Dropping the stream drops the running calls and the Bedrock connection:
//!   Stop ends both.

use super::{
    messages::{Block, ConverseInput, Turn},
    stream::{ModelEvent, ModelStream, RequestedCall, StopReason, TokenUsage, ToolOutcome},
    BedrockChat, BedrockError, ErrorKind,
};
use futures::{future::BoxFuture, stream::FuturesUnordered, StreamExt};
use std::{collections::VecDeque, sync::Arc, time::Duration};
use tokio::sync::mpsc;

/// What an answer's tool calls are run by.
pub trait ToolRunner: Send + Sync + 'static {
    /// Runs the tool `name` (one of the offered ones) with a JSON object of
    /// arguments: its text result, or why it failed.
    fn call(&self, name: &str, input: serde_json::Value) -> BoxFuture<'static, Result<String, String>>;

    /// For a tool that may only run once the user approves: the wait for
    /// that decision on this call. `None`: it runs at once.
    fn approval(&self, _name: &str, _call_id: &str) -> Option<BoxFuture<'static, Approval>> {
        None
    }
}

/// The user's decision on a call that needs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    Approved,
    Denied,
    /// Nobody decided in time.
    TimedOut,
}

/// What runs an answer's tool calls, and the bounds on them.
pub type AnswerTools = (Arc<dyn ToolRunner>, ToolLimits);

/// Bounds on an answer's tool use.
#[derive(Debug, Clone, Copy)]
pub struct ToolLimits {
    /// Rounds of tool calls one answer may make.
    pub max_rounds: u32,
    /// How long one call may take.
    pub timeout: Duration,
    /// Longest result passed to the model, in characters.
    pub max_result_chars: usize,
}

/// The answer as it arrives, over all its rounds.
pub struct AnswerStream {
    chat: BedrockChat,
    input: ConverseInput,
    tools: Option<AnswerTools>,
    rounds: u32,
    state: State,
    stop: Option<StopReason>,
    usage: Option<TokenUsage>,
    queue: VecDeque<ModelEvent>,
}

enum State {
    // Boxed: a stream is large, and the other states are small.
    Streaming(Box<ModelStream>),
    Running {
        calls: FuturesUnordered<BoxFuture<'static, (usize, ToolOutcome)>>,
        requested: Vec<RequestedCall>,
        results: Vec<Option<ToolOutcome>>,
        /// Calls approved since: each now runs.
        approved: mpsc::UnboundedReceiver<String>,
    },
    Calling(BoxFuture<'static, Result<ModelStream, BedrockError>>),
    Ended,
}

impl AnswerStream {
    pub(super) fn new(
        chat: BedrockChat,
        input: ConverseInput,
        first: ModelStream,
        tools: Option<AnswerTools>,
    ) -> Self {
        Self {
            chat,
            input,
            tools,
            rounds: 0,
            state: State::Streaming(Box::new(first)),
            stop: None,
            usage: None,
            queue: VecDeque::new(),
        }
    }

    /// Rounds of tool calls made so far.
    pub fn tool_rounds(&self) -> u32 {
        self.rounds
    }

    /// The next event; `None` at the end of the last round.
    pub async fn next(&mut self) -> Option<Result<ModelEvent, BedrockError>> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(Ok(event));
            }
            match &mut self.state {
                State::Streaming(stream) => match stream.next().await {
                    Some(Ok(ModelEvent::Stop(reason))) => self.stop = Some(reason),
                    Some(Ok(ModelEvent::Usage(usage))) => *self.usage.get_or_insert_default() += usage,
                    Some(Ok(event)) => return Some(Ok(event)),
                    Some(Err(err)) => {
                        self.state = State::Ended;
                        return Some(Err(err));
                    }
                    None => {
                        if let Err(err) = self.end_round() {
                            self.state = State::Ended;
                            return Some(Err(err));
                        }
                    }
                },
                State::Running {
                    calls,
                    results,
                    requested,
                    approved,
                } => {
                    let next = tokio::select! {
                        biased;
                        Some(id) = approved.recv() => return Some(Ok(ModelEvent::ToolRunning { id })),
                        next = calls.next() => next,
                    };
                    match next {
                        Some((at, outcome)) => {
                            results[at] = Some(outcome.clone());
                            // A call approved and finished within one poll:
                            // its `running` still comes before its result.
                            while let Ok(id) = approved.try_recv() {
                                self.queue.push_back(ModelEvent::ToolRunning { id });
                            }
                            let id = requested[at].id.clone();
                            self.queue
                                .push_back(ModelEvent::ToolResult { id, result: outcome });
                        }
                        None => self.next_round(),
                    }
                }
                State::Calling(call) => match call.await {
                    Ok(stream) => self.state = State::Streaming(Box::new(stream)),
                    Err(err) => {
                        self.state = State::Ended;
                        return Some(Err(err));
                    }
                },
                State::Ended => return None,
            }
        }
    }

    /// The Bedrock stream of a round ended: run its tool calls, or end.
    fn end_round(&mut self) -> Result<(), BedrockError> {
        let State::Streaming(stream) = std::mem::replace(&mut self.state, State::Ended) else {
            return Ok(());
        };
        let (blocks, requested) = stream.into_message().finish();
        let wants_tools = self.stop.as_ref().is_some_and(StopReason::is_tool_use) && !requested.is_empty();
        let Some((runner, limits)) = self.tools.clone().filter(|_| wants_tools) else {
            // The answer's end: its stop reason, then the summed usage. (No
            // stop reason at all is reported by the caller as a cut stream.)
            self.queue.extend(self.stop.take().map(ModelEvent::Stop));
            self.queue.extend(self.usage.take().map(ModelEvent::Usage));
            return Ok(());
        };
        if self.rounds >= limits.max_rounds {
            return Err(BedrockError::new(
                ErrorKind::ToolRounds,
                format!("the model asked for tools more than {} times", limits.max_rounds),
            ));
        }
        self.rounds += 1;
        self.stop = None;
        self.input.turns.push(Turn {
            from_user: false,
            blocks,
        });
        let offered: Vec<String> = self.input.tools.iter().map(|t| t.name.clone()).collect();
        let calls = FuturesUnordered::new();
        let (approvals, approved) = mpsc::unbounded_channel();
        for (at, call) in requested.iter().enumerate() {
            let approval = offered
                .contains(&call.name)
                .then(|| runner.approval(&call.name, &call.id))
                .flatten();
            self.queue.push_back(match approval {
                Some(_) => ModelEvent::ToolAwaitingApproval { id: call.id.clone() },
                None => ModelEvent::ToolRunning { id: call.id.clone() },
            });
            let run = run_call(
                runner.clone(),
                limits,
                &offered,
                call,
                approval,
                approvals.clone(),
            );
            calls.push(Box::pin(async move { (at, run.await) }) as BoxFuture<'static, _>);
        }
        self.state = State::Running {
            calls,
            results: vec![None; requested.len()],
            requested,
            approved,
        };
        Ok(())
    }

    /// Every call of the round ended: send the results, in the order the
    /// model asked, and go on.
    fn next_round(&mut self) {
        let State::Running {
            requested, results, ..
        } = std::mem::replace(&mut self.state, State::Ended)
        else {
            return;
        };
        let blocks = requested
            .into_iter()
            .zip(results)
            .map(|(call, result)| {
                let result = result.unwrap_or_else(|| ToolOutcome {
                    ok: false,
                    content: "The call did not finish.".to_owned(),
                    duration_ms: 0,
                });
                Block::ToolResult {
                    id: call.id,
                    ok: result.ok,
                    content: result.content,
                }
            })
            .collect();
        self.input.turns.push(Turn {
            from_user: true,
            blocks,
        });
        let chat = self.chat.clone();
        let input = self.input.clone();
        self.state = State::Calling(Box::pin(async move { chat.converse_stream(&input).await }));
    }
}

/// Runs one call within the limits, once approved when it needs approval
/// (`approved` hears of it then); every failure is a result the model reads.
fn run_call(
    runner: Arc<dyn ToolRunner>,
    limits: ToolLimits,
    offered: &[String],
    call: &RequestedCall,
    approval: Option<BoxFuture<'static, Approval>>,
    approved: mpsc::UnboundedSender<String>,
) -> BoxFuture<'static, ToolOutcome> {
    let refusal = if !offered.contains(&call.name) {
        Some(format!(
            "There is no tool named {:?}. The tools you may call are: {}.",
            call.name,
            offered.join(", ")
        ))
    } else {
        None
    };
    let written = if call.input.trim().is_empty() {
        "{}"
    } else {
        call.input.as_str()
    };
    let input = match serde_json::from_str::<serde_json::Value>(written) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(_) => Err("The arguments must be a JSON object. Call the tool again with an object.".to_owned()),
        Err(err) => Err(format!(
            "The arguments are not valid JSON ({err}). Call the tool again with a JSON object."
        )),
    };
    let (name, id) = (call.name.clone(), call.id.clone());
    Box::pin(async move {
        let decision = match approval {
            None => Ok(()),
            Some(wait) => match wait.await {
                Approval::Approved => {
                    let _ = approved.send(id);
                    Ok(())
                }
                Approval::Denied => Err("The user declined to run this tool call.".to_owned()),
                Approval::TimedOut => {
                    Err("Nobody approved this tool call in time, so it was not run.".to_owned())
                }
            },
        };
        // The call's own time starts once it may run.
        let started = std::time::Instant::now();
        let result = match (decision, refusal, input) {
            (Err(declined), _, _) => Err(declined),
            (Ok(()), Some(refusal), _) => Err(refusal),
            (Ok(()), None, Err(invalid)) => Err(invalid),
            (Ok(()), None, Ok(input)) => {
                match tokio::time::timeout(limits.timeout, runner.call(&name, input)).await {
                    Ok(result) => result,
                    Err(_) => Err(format!(
                        "The tool did not answer within {} seconds.",
                        limits.timeout.as_secs_f64()
                    )),
                }
            }
        };
        let (ok, content) = match result {
            Ok(text) => (true, text),
            Err(why) => (false, why),
        };
        ToolOutcome {
            ok,
            content: truncate(content, limits.max_result_chars),
            duration_ms: started.elapsed().as_millis() as u64,
        }
    })
}

/// At most `max` characters, saying how much was cut.
fn truncate(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text,
        Some((cut, _)) => {
            let rest = text[cut..].chars().count();
            format!("{}\n[… {rest} more characters cut]", &text[..cut])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn long_results_say_how_much_was_cut() {
        assert_eq!(truncate("short".into(), 10), "short");
        assert_eq!(
            truncate("안녕하세요".into(), 2),
            "안녕\n[… 3 more characters cut]"
        );
    }
}
