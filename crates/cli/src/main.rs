//! `orchestrate`: recreates a whole ML deployment from one deploy.yaml.
//!
//! This binary stays thin: it parses the command line ([`cli`]), runs the subcommand ([`commands`],
//! which call the spec, engine and target libraries), renders the result ([`render`], progress via
//! [`reporter`]) and maps it to an exit code ([`exit`]: 0 ok, 1 error, 2 drift; 130 on Ctrl-C).

mod cli;
mod commands;
mod deployment;
mod documents;
mod exit;
mod interrupt;
mod logging;
mod model_image;
mod monitor_report;
mod render;
mod reporter;
mod targets;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::deployment::Context;
use crate::exit::{Exit, Reported};
use crate::interrupt::Interrupt;
use crate::render::Printer;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // clap exits 2 on usage errors; 2 means drift here.
            return if error.use_stderr() {
                Exit::Error
            } else {
                Exit::Success
            }
            .into();
        }
    };
    logging::init(cli.global.verbose);
    let printer = Printer::new(cli.global.output);
    let spinners = std::io::stderr().is_terminal() && !printer.is_json() && cli.global.verbose == 0;
    let cx = Context {
        global: cli.global,
        printer,
        spinners,
        interrupt: Interrupt::default(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            cx.printer
                .error(&anyhow::Error::new(error).context("cannot start the async runtime"));
            return Exit::Error.into();
        }
    };
    runtime.spawn(on_ctrl_c(cx.interrupt.clone()));
    let result = runtime.block_on(async {
        tokio::select! {
            result = commands::run(&cx, cli.command) => result,
            // A command holding the deployment's lock ends itself (see `Session::while_locked`).
            () = cx.interrupt.triggered_and_free() => Err(interrupt::interrupted()),
        }
    });
    // Not waiting for a blocking read of a prompt that Ctrl-C interrupted.
    runtime.shutdown_background();
    match result {
        Ok(exit) => exit.into(),
        Err(error) => {
            if let Some(Reported(exit)) = error.downcast_ref::<Reported>() {
                return (*exit).into();
            }
            cx.printer.error(&error);
            Exit::Error.into()
        }
    }
}

/// Ctrl-C: says what state things are left in and marks the run as interrupted; the command ends
/// through its normal path (giving back the deployment's lock) and exits with 130, the shell's
/// code for SIGINT. Runs on a worker thread, so it also fires while the main thread waits at a
/// prompt. Nothing needs undoing: every target operation is idempotent and the next `up` picks up
/// where this one stopped (a running training job is re-attached to). A second Ctrl-C exits at
/// once.
async fn on_ctrl_c(interrupt: Interrupt) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    eprintln!(
        "\ninterrupted: work already started goes on (a training job keeps running); \
         `orchestrate status` shows where things stand and `orchestrate up` continues from there"
    );
    interrupt.trigger();
    if tokio::signal::ctrl_c().await.is_ok() {
        eprintln!(
            "interrupted again: exiting without giving the deployment lock back; \
             the next run may need --break-lock"
        );
        std::process::exit(Exit::Interrupted.code().into());
    }
}
