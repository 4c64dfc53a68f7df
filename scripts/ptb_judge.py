#!/usr/bin/env python3
"""An independent judge of the sandbox: python-telegram-bot 22.8, a client library Nezuko does not
use, talks to `nezuko sandbox` and must parse every reply shape the sandbox produces. Each call goes
through PTB's own request and parsing code; a reply it cannot parse raises, and the fields a bot
needs are checked by value. Errors must arrive as PTB's typed exceptions (BadRequest, Forbidden,
RetryAfter, ChatMigrated, InvalidToken). Exits 1 naming every failure.

Usage: scripts/ptb_judge.py path/to/nezuko   (scripts/ptb-judge sets up PTB and calls this)
"""
import asyncio
import json
import socket
import subprocess
import sys
import time
import traceback
import urllib.request

import telegram
from telegram import (
    Bot,
    ChatFullInfo,
    ChatMember,
    ChatMemberRestricted,
    ChatPermissions,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyParameters,
)
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, RetryAfter

PTB_VERSION = "22.8"
failures = []
unknown_fields = {}


def check(condition, what):
    if not condition:
        raise AssertionError(what)


class Sandbox:
    """The sandbox process and its HTTP control API."""

    def __init__(self, binary):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [binary, "sandbox", "--listen", f"127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.time() + 30
        while True:
            try:
                self.op("violations")
                return
            except OSError:
                if self.process.poll() is not None or time.time() > deadline:
                    raise SystemExit(
                        "nezuko sandbox did not start: " + self.process.stderr.read().decode()
                    )
                time.sleep(0.1)

    def op(self, operation, **body):
        request = urllib.request.Request(
            f"{self.url}/_sandbox/{operation}",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)["result"]
        except urllib.error.HTTPError as error:
            raise AssertionError(f"control {operation}: {error.read().decode()}") from None

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def note_unknown(obj, seen=None):
    """Remembers fields PTB did not recognise (api_kwargs): newer than its Bot API 10.0."""
    seen = seen if seen is not None else set()
    if id(obj) in seen or not isinstance(obj, telegram.TelegramObject):
        return
    seen.add(id(obj))
    for key in obj.api_kwargs:
        unknown_fields.setdefault(type(obj).__name__, set()).add(key)
    for value in obj.__dict__.values() if hasattr(obj, "__dict__") else []:
        if isinstance(value, (list, tuple)):
            for item in value:
                note_unknown(item, seen)
        else:
            note_unknown(value, seen)
    for slot in getattr(obj, "__slots__", ()):
        value = getattr(obj, slot, None)
        if isinstance(value, (list, tuple)):
            for item in value:
                note_unknown(item, seen)
        else:
            note_unknown(value, seen)


async def case(name, body):
    try:
        await body()
        print(f"ok    {name}")
    except Exception as error:  # every failure is reported, then the judge exits 1
        failures.append(name)
        print(f"FAIL  {name}: {error!r}")
        traceback.print_exc()


def self_test():
    """The judge can fail: a restricted member without 10.1's can_edit_tag does not parse."""
    member = {
        "status": "restricted", "user": {"id": 1, "is_bot": False, "first_name": "A"},
        "is_member": True, "until_date": 0, "can_send_messages": False,
        "can_send_audios": False, "can_send_documents": False, "can_send_photos": False,
        "can_send_videos": False, "can_send_video_notes": False, "can_send_voice_notes": False,
        "can_send_polls": False, "can_send_other_messages": False,
        "can_add_web_page_previews": False, "can_react_to_messages": False,
        "can_change_info": False, "can_invite_users": False, "can_pin_messages": False,
        "can_manage_topics": False,
    }
    try:
        ChatMember.de_json(dict(member), None)
    except TypeError:
        pass
    else:
        raise SystemExit("judge self-test: PTB parsed a ChatMemberRestricted without can_edit_tag")
    parsed = ChatMember.de_json(dict(member, can_edit_tag=False), None)
    check(isinstance(parsed, ChatMemberRestricted), "the complete member parses")


async def judge(sandbox):
    s = sandbox
    s.op("set_rate_limits", enabled=False, per_bot_per_s=30.0, per_chat_per_s=1.0,
         per_chat_burst=3.0, per_group_per_min=20.0)
    guard = s.op("create_bot", first_name="Judge", username="judge_bot")
    other_bot = s.op("create_bot", first_name="Other", username="other_bot")
    owner = s.op("create_user", first_name="Owner", username="owner")["id"]
    names = ["Ann", "Ben", "Cat", "Dan", "Eve", "Fay", "Gus", "Hal"]
    users = {n: s.op("create_user", first_name=n, last_name="Judge")["id"] for n in names}
    group = s.op("create_chat", kind="supergroup", title="Readers", username="readers")["id"]
    channel = s.op("create_chat", kind="channel", title="News", username="news")["id"]
    forum = s.op("create_chat", kind="supergroup", title="Forum", is_forum=True)["id"]
    basic = s.op("create_chat", kind="group", title="Basic")["id"]
    rights = {"can_manage_chat": True, "can_delete_messages": True,
              "can_restrict_members": True, "can_invite_users": True, "can_post_messages": True}
    for chat in (group, channel, forum, basic):
        s.op("set_member", chat=chat, user=owner, status={"status": "creator"})
    bot = Bot(guard["token"], base_url=f"{s.url}/bot")
    await bot.initialize()
    await bot.get_updates(allowed_updates=list(telegram.Update.ALL_TYPES))
    for chat in (group, channel, forum, basic):
        s.op("promote", chat=chat, user=guard["id"], rights=rights)
    s.op("promote", chat=group, user=other_bot["id"], rights=rights)
    updates_seen = {}
    offset = 0

    async def poll():
        nonlocal offset
        updates = await bot.get_updates(offset=offset, timeout=0)
        for update in updates:
            note_unknown(update)
            offset = update.update_id + 1
            for kind in telegram.Update.ALL_TYPES:
                if getattr(update, kind, None) is not None:
                    updates_seen.setdefault(kind, []).append(update)
        return updates

    async def get_me():
        me = await bot.get_me()
        note_unknown(me)
        check(me.id == guard["id"] and me.is_bot and me.can_join_groups is not None, f"getMe: {me}")

    async def get_chat():
        for chat_id, kind in ((group, "supergroup"), (channel, "channel"), (forum, "supergroup"),
                              (basic, "group"), ("@readers", "supergroup")):
            info = await bot.get_chat(chat_id)
            note_unknown(info)
            check(isinstance(info, ChatFullInfo) and info.type == kind, f"getChat {chat_id}: {info}")
            check(info.accepted_gift_types is not None, "accepted_gift_types")
        full = await bot.get_chat(group)
        check(full.permissions is not None and full.permissions.can_edit_tag is not None,
              "getChat permissions carry can_edit_tag")
        check((await bot.get_chat(forum)).is_forum, "a forum says is_forum")

    async def updates_of_every_kind():
        ann, ben = users["Ann"], users["Ben"]
        s.op("join", chat=group, user=ann)
        said = s.op("send", chat=group, user=ann, text="hello")["message_id"]
        s.op("edit", chat=group, message_id=said, user=ann, text="hello!")
        s.op("link_discussion", channel=channel, group=group)
        s.op("post", chat=channel, text="fresh post")
        s.op("join", chat=channel, user=ben)
        s.op("request_join", chat=group, user=ben)
        s.op("promote", chat=channel, user=ann, rights={})
        s.op("send", chat=group, user=ann, text="as the channel", sender_chat=channel)
        s.op("send", chat=group, user=owner, text="as the group", sender_chat=group)
        thread = s.op("create_topic", chat=forum, user=owner, name="Rules")["message_thread_id"]
        s.op("join", chat=forum, user=ann)
        s.op("send", chat=forum, user=ann, text="in a topic", thread=thread)
        s.op("send_private", bot=guard["id"], user=ann, text="/start")
        s.op("block_bot", user=ann, bot=guard["id"])
        s.op("unblock_bot", user=ann, bot=guard["id"])
        await poll()
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("I have joined", callback_data="check")]])
        sent = await bot.send_message(group, "Join first", reply_markup=keyboard)
        s.op("press_button", chat=group, message_id=sent.message_id, user=ann, data="check")
        await poll()
        for kind in ("message", "edited_message", "channel_post", "callback_query",
                     "chat_member", "my_chat_member", "chat_join_request"):
            check(kind in updates_seen, f"an update of kind {kind} was parsed")
        messages = [u.message for u in updates_seen["message"]]
        auto = [m for m in messages if m.is_automatic_forward]
        check(auto and auto[0].sender_chat.id == channel and auto[0].forward_origin.chat.id == channel,
              "the automatic forward keeps sender_chat and forward_origin")
        as_channel = [m for m in messages if m.text == "as the channel"]
        check(as_channel and as_channel[0].sender_chat.id == channel
              and as_channel[0].from_user.username == "Channel_Bot", "a message written as a channel")
        anonymous = [m for m in messages if m.text == "as the group"]
        check(anonymous and anonymous[0].sender_chat.id == group, "an anonymous administrator")
        topical = [m for m in messages if m.text == "in a topic"]
        check(topical and topical[0].message_thread_id == thread and topical[0].is_topic_message,
              "a topic message")
        created = [m for m in messages if m.forum_topic_created is not None]
        check(created and created[0].forum_topic_created.name == "Rules", "forum_topic_created")
        check(any(m.new_chat_members for m in messages), "new_chat_members")
        edited = updates_seen["edited_message"][0].edited_message
        check(edited.text == "hello!" and edited.edit_date is not None, "edited_message")
        request = updates_seen["chat_join_request"][0].chat_join_request
        check(request.user_chat_id == ben and request.from_user.id == ben, "chat_join_request")
        query = updates_seen["callback_query"][0].callback_query
        check(query.data == "check" and query.message.message_id == sent.message_id, "callback_query")
        blocked = [u.my_chat_member for u in updates_seen["my_chat_member"]
                   if u.my_chat_member.chat.type == "private"]
        check([m.new_chat_member.status for m in blocked] == ["kicked", "member"],
              "my_chat_member for a blocked and unblocked bot")
        answered = await bot.answer_callback_query(query.id, text="Thanks")
        check(answered is True, "answerCallbackQuery")
        edited_reply = await bot.edit_message_text("Join first, please", chat_id=group,
                                                   message_id=sent.message_id, reply_markup=keyboard)
        note_unknown(edited_reply)
        check(edited_reply.text == "Join first, please" and edited_reply.reply_markup is not None,
              "editMessageText")
        check(await bot.delete_message(group, sent.message_id) is True, "deleteMessage")
        in_topic = await bot.send_message(forum, "topic reply", message_thread_id=thread)
        check(in_topic.message_thread_id == thread, "sendMessage into a topic")
        replied = await bot.send_message(group, "a reply", reply_parameters=ReplyParameters(said))
        check(replied.reply_to_message.message_id == said, "a reply carries reply_to_message")
        await bot.approve_chat_join_request(group, ben)
        s.op("request_join", chat=channel, user=users["Cat"])
        await bot.decline_chat_join_request(channel, users["Cat"])

    async def every_member_status():
        cat, dan, eve, fay = (users[n] for n in ("Cat", "Dan", "Eve", "Fay"))
        for user in (cat, dan, eve, fay):
            s.op("join", chat=group, user=user)
        await bot.restrict_chat_member(group, cat, ChatPermissions.no_permissions())
        await bot.ban_chat_member(group, dan)
        s.op("leave", chat=group, user=eve)
        s.op("admin_restrict", chat=group, admin=owner, user=fay, permissions={"can_send_polls": True},
             until_date=int(time.time()) + 3600)
        expected = {owner: "creator", guard["id"]: "administrator", users["Ann"]: "member",
                    cat: "restricted", eve: "left", dan: "kicked", fay: "restricted"}
        for user, status in expected.items():
            member = await bot.get_chat_member(group, user)
            note_unknown(member)
            check(member.status == status, f"getChatMember {user}: {member.status} != {status}")
        restricted = await bot.get_chat_member(group, cat)
        check(restricted.can_edit_tag is False and restricted.can_react_to_messages is False,
              "10.1's restricted fields")
        timed = await bot.get_chat_member(group, fay)
        check(timed.can_send_polls and timed.until_date is not None, "a timed restriction")
        admin = await bot.get_chat_member(group, guard["id"])
        check(admin.can_restrict_members and admin.can_manage_topics is not None
              and admin.can_post_messages is None, "a supergroup administrator's rights")
        in_channel = await bot.get_chat_member(channel, guard["id"])
        check(in_channel.can_post_messages and in_channel.can_manage_topics is None,
              "a channel administrator's rights")
        await bot.restrict_chat_member(group, cat, ChatPermissions.all_permissions())
        check((await bot.get_chat_member(group, cat)).status == "member", "all permissions lift")
        await bot.unban_chat_member(group, dan, only_if_banned=True)
        check((await bot.get_chat_member(group, dan)).status == "left", "unban")
        admins = await bot.get_chat_administrators(group)
        for admin in admins:
            note_unknown(admin)
        check({a.user.id for a in admins} == {owner, guard["id"]}, "other bots are left out")
        with_bots = await bot.get_chat_administrators(group, api_kwargs={"return_bots": True})
        check(len(with_bots) == 3, "return_bots lists every bot")
        check(await bot.get_chat_member_count(group) >= 4, "getChatMemberCount")

    async def invite_links_and_commands():
        link = await bot.create_chat_invite_link(channel, name="judge", creates_join_request=True)
        note_unknown(link)
        check(link.creates_join_request and link.name == "judge", "createChatInviteLink")
        commands = [telegram.BotCommand("protect", "Protect this group")]
        check(await bot.set_my_commands(commands) is True, "setMyCommands")
        check([c.command for c in await bot.get_my_commands()] == ["protect"], "getMyCommands")

    async def errors_are_typed():
        try:
            await bot.restrict_chat_member(basic, users["Gus"], ChatPermissions.no_permissions())
            raise AssertionError("a basic group restricted a member")
        except BadRequest as error:
            check("only for supergroups" in error.message.lower(), error.message)
        s.op("join", chat=basic, user=users["Hal"])
        upgraded = s.op("upgrade_group", chat=basic, user=owner)["id"]
        try:
            await bot.send_message(basic, "still there?")
            raise AssertionError("the upgraded group answered")
        except ChatMigrated as error:
            check(error.new_chat_id == upgraded, f"ChatMigrated to {error.new_chat_id}")
        s.op("inject_fault", bot=guard["id"], method="getMe", kind={"type": "retry_after", "seconds": 3},
             times=1)
        try:
            await bot.get_me()
            raise AssertionError("no 429")
        except RetryAfter as error:
            # PTB 22 gives seconds as an int (a timedelta once PTB_TIMEDELTA is set).
            wait = error.retry_after
            seconds = wait.total_seconds() if hasattr(wait, "total_seconds") else wait
            check(seconds == 3, f"retry_after {wait}")
        s.op("delete_account", user=users["Gus"])
        s.op("send_private", bot=guard["id"], user=users["Hal"], text="/start")
        s.op("block_bot", user=users["Hal"], bot=guard["id"])
        try:
            await bot.send_message(users["Hal"], "hello")
            raise AssertionError("a blocked bot wrote")
        except Forbidden as error:
            check("blocked by the user" in error.message.lower(), error.message)
        try:
            await bot.send_message(forum, "nowhere", message_thread_id=9999)
            raise AssertionError("a missing topic took a message")
        except BadRequest as error:
            check("message thread not found" in error.message.lower(), error.message)
        revoked = Bot(other_bot["token"], base_url=f"{s.url}/bot")
        s.op("revoke_token", bot=other_bot["id"])
        try:
            await revoked.get_me()
            raise AssertionError("a revoked token worked")
        except InvalidToken:
            pass
        malformed = Bot("not-a-token:x", base_url=f"{s.url}/bot")
        try:
            await malformed.get_me()
            raise AssertionError("a malformed token worked")
        except (InvalidToken, telegram.error.TelegramError):
            pass

    self_test()
    await case("getMe", get_me)
    await case("getChat for every chat kind", get_chat)
    await case("getUpdates with every update kind, messages, buttons, join requests", updates_of_every_kind)
    await case("getChatMember in all six statuses, administrators, restrict/ban/unban", every_member_status)
    await case("invite links and commands", invite_links_and_commands)
    await case("errors arrive as PTB's typed exceptions", errors_are_typed)
    violations = s.op("violations")
    if violations:
        failures.append("spec violations")
        print("FAIL  requests PTB made or replies the sandbox gave are off the spec:")
        for violation in violations:
            print("      ", violation)
    await bot.shutdown()


def main():
    if telegram.__version__ != PTB_VERSION:
        raise SystemExit(f"the judge is python-telegram-bot {PTB_VERSION}, not {telegram.__version__}")
    sandbox = Sandbox(sys.argv[1])
    try:
        asyncio.run(judge(sandbox))
    finally:
        sandbox.stop()
    if unknown_fields:
        print("fields newer than PTB's Bot API " + telegram.constants.BOT_API_VERSION + " (kept in api_kwargs):")
        for type_name, fields in sorted(unknown_fields.items()):
            print(f"      {type_name}: {', '.join(sorted(fields))}")
    if failures:
        print(f"python-telegram-bot {PTB_VERSION} could not use {len(failures)} reply shape(s): {failures}")
        sys.exit(1)
    print(f"python-telegram-bot {PTB_VERSION} parsed every reply shape of the sandbox")


if __name__ == "__main__":
    main()
