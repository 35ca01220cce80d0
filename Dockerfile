# syntax=docker/dockerfile:1.7
# One image for every FlashDuck component: run it with `node apps/<app>/dist/main.js`
# (monitor, cacher, query-api, exporter, write-applier) or `node apps/cli/dist/main.js <command>`.
ARG NODE_VERSION=20

FROM node:${NODE_VERSION}-bookworm-slim AS base
RUN npm install -g pnpm@9.15.9 turbo@2.11.11 && npm cache clean --force

# Only the workspace packages the CLI (and so every component) needs, lockfile included.
FROM base AS prune
WORKDIR /src
COPY . .
RUN turbo prune @flashduck/cli --docker

# Build with every dependency: sources after the install, so the install layer is cached while only sources change.
FROM base AS build
WORKDIR /app
COPY --from=prune /src/out/json/ ./
COPY --from=prune /src/out/pnpm-lock.yaml /src/out/pnpm-workspace.yaml ./
RUN pnpm install --frozen-lockfile
COPY --from=prune /src/out/full/ ./
COPY tsconfig.base.json turbo.json ./
RUN pnpm turbo run build --filter=@flashduck/cli... \
 && mkdir /out \
 && for d in apps/* packages/*; do mkdir -p "/out/$d" && cp -r "$d/dist" "/out/$d/"; done \
 && cp -r packages/core/lua /out/packages/core/ \
 && cp -r apps/query-api/public apps/query-api/openapi.json /out/apps/query-api/

# Production dependencies only, installed clean (no compilers, test tools or TypeScript).
FROM base AS prod-deps
WORKDIR /app
COPY --from=prune /src/out/json/ ./
COPY --from=prune /src/out/pnpm-lock.yaml /src/out/pnpm-workspace.yaml ./
RUN pnpm install --frozen-lockfile --prod

# Runtime: Debian slim (DuckDB's prebuilt binding needs glibc), non-root.
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production \
    FLASHDUCK_DATA_DIR=/data \
    FLASHDUCK_EXPORT_DIR=/exports
WORKDIR /app
COPY --from=prod-deps --chown=node:node /app ./
COPY --from=build --chown=node:node /out ./
# /exports is open to every user, as /tmp is: a named volume starts as a copy of it, and the components may run as
# any uid (docker-compose.yml's FLASHDUCK_UID) while they write exports there.
RUN mkdir -p /data /exports && chown node:node /data /exports && chmod 1777 /exports
USER 1000:1000
EXPOSE 8080
CMD ["node", "apps/query-api/dist/main.js"]
