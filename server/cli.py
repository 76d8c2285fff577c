"""The ``visitgate`` command: serve, migrate, create-facility, create-officer,
recognition-worker, demo.

This is the edge of the process: it builds ``Settings`` from flags and the
environment once and passes it in; nothing below reads either.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import ssl
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from types import FrameType
from typing import TypeVar

from aiohttp import web

from sessions.adapters.sql import SqlUnitOfWorkFactory, create_engine, current_revision, upgrade
from sessions.clock import SystemClock
from sessions.errors import DomainError
from sessions.facilities import FacilityKind
from sessions.officers import parse_roles
from sessions.passwords import Argon2Hasher
from sessions.services import VisitGateService

from .app import create_app
from .settings import Settings, SettingsError, add_arguments

T = TypeVar("T")
log = logging.getLogger("visitgate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visitgate", description="VisitGate 亲属网上视频会见服务")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the web server / 启动服务")
    add_arguments(serve)
    serve.add_argument(
        "--no-migrate", action="store_true", help="do not upgrade the database schema at start"
    )

    migrate = commands.add_parser("migrate", help="upgrade the database schema / 升级数据库")
    add_arguments(migrate)

    facility = commands.add_parser("create-facility", help="add a facility / 添加监所")
    add_arguments(facility)
    facility.add_argument("--name", required=True)
    facility.add_argument("--kind", required=True, choices=[k.value for k in FacilityKind])
    facility.add_argument("--time-zone", default="Asia/Shanghai")

    officer = commands.add_parser("create-officer", help="add an officer account / 添加民警账号")
    add_arguments(officer)
    officer.add_argument("--facility", required=True, help="facility id or exact name")
    officer.add_argument("--username", required=True)
    officer.add_argument("--display-name", required=True)
    officer.add_argument(
        "--roles", required=True, help="comma-separated: intake,reviewer,duty,leader,admin"
    )
    officer.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )

    worker = commands.add_parser(
        "recognition-worker",
        help="analyse faces for servers sharing a Redis (needs REDIS_URL) / 人脸识别工作进程",
    )
    add_arguments(worker)
    worker.add_argument(
        "--group",
        default=None,
        help="Redis consumer group (default: visitgate-recognition; servers use the same)",
    )
    worker.add_argument(
        "--consumer", default=None, help="this worker's name in the group (default: HOSTNAME-PID)"
    )

    demo = commands.add_parser("demo", help="seeded demo server / 演示")
    add_arguments(demo)
    demo.add_argument(
        "--keep", action="store_true", help="keep the previous demo data instead of reseeding"
    )
    return parser


async def _with_service(settings: Settings, work: Callable[[VisitGateService], Awaitable[T]]) -> T:
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        service = VisitGateService(SqlUnitOfWorkFactory(engine), SystemClock(), Argon2Hasher())
        return await work(service)
    finally:
        await engine.dispose()


async def _migrate(settings: Settings) -> str | None:
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        return await current_revision(engine)
    finally:
        await engine.dispose()


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


def serve(settings: Settings, *, migrate: bool = True) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings, migrate=migrate)
    print(f"VisitGate 服务地址 / listening on {settings.base_url()}", flush=True)
    web.run_app(
        app, host=settings.host, port=settings.port, ssl_context=_ssl_context(settings), print=None
    )


def recognition_worker(
    settings: Settings, *, group: str | None = None, consumer: str | None = None
) -> int:
    """Run one recognition worker on the Redis stream until SIGINT or SIGTERM.

    The signal only sets an event the worker polls between frames (within a
    second), so a frame being analysed is finished and answered, and the worker
    leaves its consumer group, instead of dying with the entry pending."""
    if settings.redis_url is None:
        print(
            "错误 / error: 识别工作进程需要 Redis，请设置 --redis-url 或 REDIS_URL / "
            "the recognition worker needs Redis: set --redis-url or REDIS_URL",
            file=sys.stderr,
        )
        return 2
    # Imported here: dlib and the models are for this command only.
    from recognition.stream import GROUP, run_worker

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current frame", signum)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print("识别工作进程启动中 / recognition worker starting", flush=True)
        stats = run_worker(
            settings.redis_url, group=group or GROUP, consumer=consumer, stop_event=stop
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"识别工作进程已停止 / recognition worker stopped: {stats}", flush=True)
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("密码 / password: ")
    if getpass.getpass("再次输入 / again: ") != first:
        raise SystemExit("两次输入的密码不一致 / the passwords differ")
    return first


async def _create_officer(
    service: VisitGateService, args: argparse.Namespace, password: str
) -> str:
    async with service.uow() as uow:
        facilities = await uow.facilities.list()
    match = [f for f in facilities if args.facility in (f.id, f.name)]
    if len(match) != 1:
        raise SystemExit(f"找不到监所 / no such facility: {args.facility}")
    officer = await service.create_officer(
        facility_id=match[0].id,
        username=args.username,
        display_name=args.display_name,
        password=password,
        roles=parse_roles(args.roles),
    )
    return officer.id


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    parser = build_parser()
    args = parser.parse_args(argv)
    raw = vars(args)
    try:
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(raw)
        settings = Settings.from_sources(raw)
    except SettingsError as exc:
        parser.error(str(exc))
    try:
        if args.command == "recognition-worker":
            return recognition_worker(settings, group=args.group, consumer=args.consumer)
        if args.command == "serve":
            serve(settings, migrate=not args.no_migrate)
        elif args.command == "migrate":
            revision = asyncio.run(_migrate(settings))
            print(f"数据库已升级到 / database at revision {revision}")
        elif args.command == "create-facility":
            facility = asyncio.run(
                _with_service(
                    settings,
                    lambda s: s.create_facility(
                        args.name, FacilityKind(args.kind), time_zone=args.time_zone, actor="cli"
                    ),
                )
            )
            print(f"已创建监所 / facility created: {facility.id} {facility.name}")
        elif args.command == "create-officer":
            password = _read_password(args.password_stdin)
            officer_id = asyncio.run(
                _with_service(settings, lambda s: _create_officer(s, args, password))
            )
            print(f"已创建民警账号 / officer created: {officer_id} {args.username}")
    except DomainError as exc:
        print(f"错误 / error: {exc.zh} / {exc.en}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
