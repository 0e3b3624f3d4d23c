//! `dead`: a queue's dead letters: list them, replay them to their queue, or purge them, one by id
//! or the oldest `--limit` with `--all` (`DeadSelection` turns the flags into that choice). Prints
//! one line per dead job (or JSON), or how many were replayed or purged.
use super::context::queue_handle;
use crate::cli::DeadAction;
use crate::config::Settings;

pub async fn run(s: &Settings, action: DeadAction, json: bool) -> anyhow::Result<()> {
    match action {
        DeadAction::List { queue, limit } => {
            let list = queue_handle(s, &queue).await?.dead_list(0, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for r in list {
                    println!(
                        "{}  {}  attempts {}  {}",
                        r.id,
                        r.function_name.as_deref().unwrap_or("?"),
                        r.attempt,
                        r.error_message.unwrap_or_default()
                    );
                }
            }
        }
        DeadAction::Replay(sel) => {
            let (id, limit) = sel.target().map_err(anyhow::Error::msg)?;
            let n = queue_handle(s, &sel.queue).await?.replay(id, limit).await?;
            println!("replayed {n}");
        }
        DeadAction::Purge(sel) => {
            let (id, limit) = sel.target().map_err(anyhow::Error::msg)?;
            let n = queue_handle(s, &sel.queue)
                .await?
                .purge_dead(id, limit)
                .await?;
            println!("purged {n}");
        }
    }
    Ok(())
}
