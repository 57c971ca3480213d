//! One module per subcommand. Each loads what it needs, calls the libraries (the engine's executor
//! over the [`crate::deployment::Session`]'s target), prints its result with the [`crate::render::Printer`]
//! and returns the [`Exit`] it ends with.

mod down;
mod evaluate;
mod invoke;
mod monitor;
mod permissions;
mod plan;
mod rollback;
mod schema;
mod status;
mod up;
mod validate;

use crate::cli::Command;
use crate::deployment::Context;
use crate::exit::Exit;

/// Runs one subcommand.
pub async fn run(cx: &Context, command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Up(args) => up::run(cx, &args).await,
        Command::Plan => plan::run(cx).await,
        Command::Status => status::run(cx).await,
        Command::Down(args) => down::run(cx, &args).await,
        Command::Rollback => rollback::run(cx).await,
        Command::Invoke(args) => invoke::run(cx, &args).await,
        Command::Evaluate(args) => evaluate::run(cx, &args).await,
        Command::Monitor(args) => monitor::run(cx, &args).await,
        Command::Validate => validate::run(cx),
        Command::Schema => schema::run(cx),
        Command::Permissions(args) => permissions::run(cx, &args).await,
    }
}
