// Reads one hex-encoded UTF-8 string per line from stdin and prints what the
// real okio ByteString.decodeBase64 makes of it: the hex of the bytes, or "null".
// Run: java -cp /usr/share/java/okio.jar OkioDecode.java (Debian libokio-java).
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import okio.ByteString;

public class OkioDecode {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        for (String line; (line = in.readLine()) != null; ) {
            String text = ByteString.decodeHex(line).utf8();
            ByteString decoded = ByteString.decodeBase64(text);
            System.out.println(decoded == null ? "null" : decoded.hex());
        }
    }
}
