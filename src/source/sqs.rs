//! An SQS queue of delivery notifications, for `trailproof watch`: messages are received
//! (long polling) and deleted, nothing else. What a message says is read by
//! [`crate::core::notification`]; it is only ever a hint.

use super::aws::{load, AwsError, AwsOptions, NoRetryWhereNothingListens, Operation};
use super::SourceError;

/// Messages one ReceiveMessage may return (SQS allows at most 10).
const BATCH: i32 = 10;

/// One message received: its body and what deletes it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The body (empty when SQS gave none).
    pub body: String,
    /// The receipt handle of this receipt of the message.
    pub receipt: String,
}

/// A queue on SQS.
pub struct Queue {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_sqs::Client,
    options: AwsOptions,
    url: String,
}

impl Queue {
    /// The queue at `url`, in the Region of `options` (else the configured one).
    pub fn connect(options: &AwsOptions, url: &str) -> Result<Self, SourceError> {
        let runtime = super::aws::runtime(false)?;
        let client = runtime.block_on(async {
            let config = aws_sdk_sqs::config::Builder::from(&load(options, None).await)
                .retry_classifier(NoRetryWhereNothingListens)
                .build();
            aws_sdk_sqs::Client::from_conf(config)
        });
        Ok(Queue {
            runtime,
            client,
            options: options.clone(),
            url: url.to_owned(),
        })
    }

    /// Up to 10 messages, waiting at most `wait_secs` (0 to 20) for the first.
    pub fn receive(&self, wait_secs: i32) -> Result<Vec<Received>, SourceError> {
        let answer = self.runtime.block_on(
            self.client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(BATCH)
                .wait_time_seconds(wait_secs.clamp(0, 20))
                .send(),
        );
        let answer = answer.map_err(|e| {
            AwsError::new(
                &e,
                Operation::ReceiveMessage,
                self.url.clone(),
                &self.options,
            )
        })?;
        Ok(answer
            .messages()
            .iter()
            .filter_map(|m| {
                Some(Received {
                    body: m.body().unwrap_or_default().to_owned(),
                    receipt: m.receipt_handle()?.to_owned(),
                })
            })
            .collect())
    }

    /// Deletes the messages of these receipts. A receipt SQS no longer knows (the message
    /// came back to another receiver, or was deleted already) is no error: its message is
    /// received again, and verified again, which is harmless.
    pub fn delete(&self, receipts: &[String]) -> Result<(), SourceError> {
        self.runtime.block_on(async {
            for receipt in receipts {
                let sent = self
                    .client
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(receipt)
                    .send()
                    .await;
                match sent {
                    Ok(_) => {}
                    Err(e)
                        if e.as_service_error().is_some_and(|s| {
                            s.is_receipt_handle_is_invalid() || s.is_invalid_id_format()
                        }) => {}
                    Err(e) => {
                        return Err(AwsError::new(
                            &e,
                            Operation::DeleteMessage,
                            self.url.clone(),
                            &self.options,
                        )
                        .into())
                    }
                }
            }
            Ok(())
        })
    }
}
