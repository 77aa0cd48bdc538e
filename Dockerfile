# stowage: a pull-through caching OCI registry, drop-in for registry:2.
# docker build -t stowage . && docker run -d -p 5000:5000 -v stowage:/var/lib/registry stowage

FROM node:22-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 builds a native addon when no prebuilt binary matches
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:22-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config/docker.yml /etc/stowage/config.yml
RUN mkdir -p /var/lib/registry && chown node:node /var/lib/registry
USER node
VOLUME /var/lib/registry
EXPOSE 5000
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["serve", "/etc/stowage/config.yml"]
