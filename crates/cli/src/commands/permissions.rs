//! `orchestrate permissions`: the least-privilege IAM policy the operator (a person, or CI) needs to
//! run `up`, `status` and `down` for this deploy.yaml on AWS ([`aws::operator_policy`]). It is JSON
//! whatever `--output` says, ready for `aws iam put-user-policy --policy-document file://…`.

use crate::cli::PermissionsArgs;
use crate::deployment::{Context, account_error};
use crate::exit::Exit;

pub async fn run(cx: &Context, args: &PermissionsArgs) -> anyhow::Result<Exit> {
    let spec = cx.load_spec()?;
    let account = match &args.account {
        Some(account) => account.clone(),
        None => aws::Clients::load(spec.region.as_str())
            .await
            .identify()
            .await
            .map(str::to_string)
            .map_err(|e| {
                account_error(e)
                    .context("the policy names the account: pass --account ID, or credentials to ask STS")
            })?,
    };
    let mut text = serde_json::to_string_pretty(&aws::operator_policy::operator_policy(&spec, &account))?;
    text.push('\n');
    print!("{text}");
    Ok(Exit::Success)
}
