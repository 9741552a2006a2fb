# cutover-bot: build a wheel in one stage, run it as a non-root user in a slim one.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY packets ./packets
COPY store ./store
RUN pip install --no-cache-dir --upgrade pip build \
 && python -m build --wheel --outdir /wheels

FROM python:3.11-slim AS run
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PORT=3000 \
    DATABASE_URL=sqlite+aiosqlite:////data/cutover.db CUTOVER_PLANS_DIR=/plans
RUN useradd --system --uid 10001 --home-dir /data --create-home cutover \
 && mkdir -p /plans && chown cutover /plans
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels
COPY app-manifest.yml /app/app-manifest.yml
USER cutover
WORKDIR /data
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import os,urllib.request,sys; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"3000\")}/healthz', timeout=2).status == 200 else 1)"
# SIGTERM: serve stops taking requests, finishes or releases what it holds and exits, usually in
# well under 10 s and at most about 26 s (bot/commands/serve.py): run it with a 30 s stop grace
# (`docker stop -t 30`, compose `stop_grace_period: 30s`, Kubernetes
# `terminationGracePeriodSeconds: 30`).
STOPSIGNAL SIGTERM
# `serve` applies the database migrations at start-up before it listens.
CMD ["cutover-bot", "serve"]
