-- A message's deletion timer is looked up by the message: a warning that its timer deleted
-- (`warning_ttl_s`) must not be edited or deleted again when a member it named verifies, leaves
-- or is lifted later (`enforce::actions::warnings`).
CREATE INDEX scheduled_actions_message ON scheduled_actions (bot_instance_id, chat_id, message_id)
    WHERE message_id IS NOT NULL;
