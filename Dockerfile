# The fetchctl image: a static binary on a distroless base, run as the
# base's nonroot user (65532, as configs/kubernetes/ sets runAsUser).
#   docker build --build-arg VERSION=$(git describe --tags --always) -t fetchctl .
#   printf 'https://example.com\n' | docker run --rm -i fetchctl run -
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS TARGETARCH
ARG VERSION=dev COMMIT=none
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
	-ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" \
	-o /out/fetchctl ./cmd/fetchctl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/fetchctl /usr/local/bin/fetchctl
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/fetchctl"]
