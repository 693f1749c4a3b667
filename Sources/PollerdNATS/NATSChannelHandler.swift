import NIOCore

/// Parses what the server sends and hands it to the client, on the channel's event loop. It
/// answers the server's PING itself, and holds the first INFO for the handshake.
final class NATSChannelHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var parser: NATSParser
    private var buffer: ByteBuffer?
    private var firstInfo: EventLoopPromise<NATSServerInfo>?
    private let client: NATSClient

    init(client: NATSClient, firstInfo: EventLoopPromise<NATSServerInfo>) {
        self.client = client
        self.firstInfo = firstInfo
        self.parser = NATSParser()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if var b = buffer, b.readableBytes > 0 {
            buffer = nil // one owner while appending, so the write does not copy
            b.writeBuffer(&incoming)
            buffer = b
        } else {
            buffer = incoming
        }
        do {
            while var b = buffer {
                buffer = nil
                let op = try parser.next(&b)
                buffer = b
                guard let op else { break }
                if let p = firstInfo {
                    firstInfo = nil
                    guard case .info(let info) = op else {
                        p.fail(NATSError(.protocolViolation, "the server's first operation is not INFO"))
                        context.close(promise: nil)
                        return
                    }
                    p.succeed(info)
                    continue
                }
                if case .ping = op {
                    var pong = context.channel.allocator.buffer(capacity: 6)
                    NATSCommand.pong(into: &pong)
                    context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
                    continue
                }
                client.received(op, on: context.channel)
            }
            if let b = buffer, b.readableBytes == 0 { buffer = nil }
        } catch {
            client.recordError("\(error)")
            firstInfo?.fail(error)
            firstInfo = nil
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        firstInfo?.fail(NATSError(.connectionFailed, "the server closed the connection before INFO"))
        firstInfo = nil
        client.channelClosed(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        client.recordError("\(error)")
        context.close(promise: nil)
    }
}
